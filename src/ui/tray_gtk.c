/*
 * tray_gtk.c - cloudmount-tray: the GTK 3 / Ayatana AppIndicator front end of
 * the menu model (src/ui/menu_model.h).
 *
 * It keeps a snapshot of the daemon's remotes (a `status` call, then one
 * `subscribe` connection whose "state" events update the snapshot by name),
 * and rebuilds the indicator's GtkMenu from mm_menu_build() on every change.
 * The event stream is read from a GIOChannel watch on the socket: no polling.
 * When the daemon goes away the tray retries the connection every 2 s.
 *
 * Actions that talk to the daemon or run the CLI never block the main loop:
 * mount/unmount run on a short-lived thread, the CLI through GSubprocess.
 * A desktop notification (libnotify) tells when a remote goes degraded or
 * errors and when it recovers, once per state change (mm_notice_update).
 *
 * Environment: CLOUDMOUNT_ICON_DIR (an icon theme dir holding
 * hicolor/scalable/apps/cloudmount-*.svg), CLOUDMOUNT_BIN (the cloudmount
 * executable; default: next to this binary, else PATH).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <gio/gio.h>
#include <gtk/gtk.h>
#include <libayatana-appindicator/app-indicator.h>
#include <libnotify/notify.h>

#include "config/remotes.h"
#include "manager/control.h"
#include "platform/platform.h"
#include "ui/menu_model.h"

static struct {
	AppIndicator *ind;
	GtkMenu *menu;
	struct mm_remote *remotes;
	size_t n;
	bool autostart;
	int sub_fd;
	guint sub_watch;
	guint retry_id;
	GString *inbuf;
	char *exe_dir;
	GtkWidget *add_dialog;          /* the open "Add bucket" dialog, if any */
	GHashTable *told;               /* remote name -> the state notified last (mm_notice_update) */
} T = { .sub_fd = -1 };

static void rebuild(void);
static void connect_daemon(bool spawn);

/* ---- helpers -------------------------------------------------------- */

static char *cloudmount_bin(void)
{
	const char *env = g_getenv("CLOUDMOUNT_BIN");
	char *p;

	if (env && *env)
		return g_strdup(env);
	if (T.exe_dir) {
		p = g_build_filename(T.exe_dir, "cloudmount", NULL);
		if (g_file_test(p, G_FILE_TEST_IS_EXECUTABLE))
			return p;
		g_free(p);
	}
	p = g_find_program_in_path("cloudmount");
	return p ? p : g_strdup("cloudmount");
}

static const char *icon_dir(void)
{
	static char *dir;
	const char *env = g_getenv("CLOUDMOUNT_ICON_DIR");
	const char *rel[] = { "data/icons", "../data/icons", "../../data/icons", "../share/icons" };

	if (env && *env)
		return env;
	if (dir || !T.exe_dir)
		return dir;
	for (size_t i = 0; i < G_N_ELEMENTS(rel); i++) {
		char *p = g_build_filename(T.exe_dir, rel[i], "hicolor", "scalable", "apps", "cloudmount-idle.svg", NULL);
		bool ok = g_file_test(p, G_FILE_TEST_EXISTS);
		g_free(p);
		if (ok) {
			char *d = g_build_filename(T.exe_dir, rel[i], NULL);
			dir = g_canonicalize_filename(d, NULL);
			g_free(d);
			return dir;
		}
	}
	return NULL; /* the installed hicolor theme */
}

static void snapshot_clear(void)
{
	mm_remotes_free(T.remotes, T.n);
	T.remotes = NULL;
	T.n = 0;
}

/* Replace (by name) or append one remote; takes r's contents. */
static void snapshot_put(struct mm_remote *r)
{
	for (size_t i = 0; i < T.n; i++) {
		if (!strcmp(T.remotes[i].name, r->name)) {
			mm_remote_release(&T.remotes[i]);
			T.remotes[i] = *r;
			return;
		}
	}
	T.remotes = g_realloc_n(T.remotes, T.n + 1, sizeof(*T.remotes));
	T.remotes[T.n++] = *r;
}

/* The icon of a notification: our SVG's path where we know our icon dir. */
static char *notice_icon(const char *name)
{
	const char *dir = icon_dir();

	if (dir) {
		char *file = g_strconcat(name, ".svg", NULL);
		char *p = g_build_filename(dir, "hicolor", "scalable", "apps", file, NULL);
		g_free(file);
		if (g_file_test(p, G_FILE_TEST_EXISTS))
			return p;
		g_free(p);
	}
	return g_strdup(name);
}

/* Tell the user about r's state if it is news (see mm_notice_update). */
static void maybe_notify(const struct mm_remote *r)
{
	static int body_markup = -1;
	enum mm_state told = MM_STATE_UNKNOWN;
	struct mm_notice nt;
	gpointer v;

	if (g_hash_table_lookup_extended(T.told, r->name, NULL, &v))
		told = (enum mm_state)GPOINTER_TO_INT(v);
	if (!mm_notice_update(&told, r, &nt)) {
		g_hash_table_insert(T.told, g_strdup(r->name), GINT_TO_POINTER(told));
		return;
	}
	g_hash_table_insert(T.told, g_strdup(r->name), GINT_TO_POINTER(told));
	g_message("notify: %s: %s", nt.title, nt.body);
	if (!notify_is_initted())
		notify_init("CloudMount");
	if (body_markup < 0) {
		GList *caps = notify_get_server_caps();
		body_markup = g_list_find_custom(caps, "body-markup", (GCompareFunc)strcmp) != NULL;
		g_list_free_full(caps, g_free);
	}
	{
		/* a server that reads markup in bodies would eat "<" and "&" of a reason */
		char *body = body_markup ? g_markup_escape_text(nt.body, -1) : g_strdup(nt.body);
		char *icon = notice_icon(nt.icon_name);
		NotifyNotification *n = notify_notification_new(nt.title, body, icon);
		GError *err = NULL;

		notify_notification_set_urgency(n, r->state == MM_STATE_MOUNTED ? NOTIFY_URGENCY_LOW
									: NOTIFY_URGENCY_NORMAL);
		notify_notification_set_hint(n, "desktop-entry", g_variant_new_string("cloudmount-tray"));
		if (!notify_notification_show(n, &err)) {
			g_message("notification not shown: %s", err->message);
			g_error_free(err);
		}
		g_object_unref(n);
		g_free(icon);
		g_free(body);
	}
	mm_notice_release(&nt);
}

static bool load_status(void)
{
	int fd = ctl_connect();
	cJSON *req, *ans;
	char *line;
	struct mm_remote *rs = NULL;
	size_t n = 0;

	if (fd < 0)
		return false;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "cmd", "status");
	line = ctl_call(fd, req, 5000);
	cJSON_Delete(req);
	close(fd);
	if (!line)
		return false;
	ans = cJSON_Parse(line);
	free(line);
	if (!ans)
		return false;
	if (mm_status_parse(ans, &rs, &n) == 0) {
		snapshot_clear();
		T.remotes = rs;
		T.n = n;
		for (size_t i = 0; i < n; i++)
			maybe_notify(&rs[i]);
	}
	cJSON_Delete(ans);
	return true;
}

/* ---- actions -------------------------------------------------------- */

struct ctl_job {
	char *cmd;
	char *name;
};

/* Ask the daemon {"cmd": cmd, "name": name} and wait for the answer; warn when it fails. */
static void ctl_request(const char *cmd, const char *name)
{
	int fd = ctl_connect();

	if (fd < 0) {
		g_warning("%s %s: no daemon: %s", cmd, name, g_strerror(errno));
	} else {
		cJSON *req = cJSON_CreateObject();
		char *line;
		cJSON_AddStringToObject(req, "cmd", cmd);
		cJSON_AddStringToObject(req, "name", name);
		line = ctl_call(fd, req, 180000);
		cJSON_Delete(req);
		close(fd);
		if (!line)
			g_warning("%s %s: the daemon did not answer", cmd, name);
		else if (!strstr(line, "\"ok\":true"))
			g_warning("%s %s: %s", cmd, name, line);
		free(line);
	}
}

static gpointer ctl_job_run(gpointer data)
{
	struct ctl_job *j = data;

	ctl_request(j->cmd, j->name);
	g_free(j->cmd);
	g_free(j->name);
	g_free(j);
	return NULL;
}

/* The daemon answers mount/unmount only when done: ask from a thread. */
static void ctl_async(const char *cmd, const char *name)
{
	struct ctl_job *j = g_new0(struct ctl_job, 1);
	j->cmd = g_strdup(cmd);
	j->name = g_strdup(name);
	g_thread_unref(g_thread_new("cm-ctl", ctl_job_run, j));
}

static void autostart_done(GObject *src, GAsyncResult *res, gpointer data)
{
	GError *err = NULL;

	if (!g_subprocess_wait_check_finish(G_SUBPROCESS(src), res, &err)) {
		g_warning("autostart: %s", err->message);
		g_error_free(err);
	}
	T.autostart = platform_autostart_enabled() != 0;
	rebuild();
}

static void run_autostart(bool enable)
{
	char *bin = cloudmount_bin();
	GError *err = NULL;
	GSubprocess *p = g_subprocess_new(G_SUBPROCESS_FLAGS_NONE, &err, bin, "autostart",
					  enable ? "enable" : "disable", NULL);
	g_free(bin);
	if (!p) {
		g_warning("autostart: %s", err->message);
		g_error_free(err);
		return;
	}
	g_subprocess_wait_check_async(p, NULL, autostart_done, NULL);
	g_object_unref(p);
}

/* -- Add bucket… dialog -- */

enum { F_NAME, F_URL, F_ENDPOINT, F_REGION, F_KEY_ID, F_SECRET, F_COUNT };
enum { RESP_TEST = 1 };

struct add_dialog {
	GtkWidget *dialog;
	GtkWidget *entry[F_COUNT];
	GtkWidget *path_style;
	GtkWidget *result;              /* the answer of Test connection / Add */
	bool busy;
	bool gone;                      /* destroyed while a job ran: say nothing */
};

/* Show a one-line answer under the fields (plain text, never markup). */
static void add_dialog_say(struct add_dialog *ad, const char *text, bool good)
{
	if (ad->gone)
		return;
	gtk_label_set_text(GTK_LABEL(ad->result), text);
	gtk_widget_set_name(ad->result, good ? "cm-result-ok" : "cm-result-error");
	g_message("add bucket: %s", text);  /* never holds the secret: answers only */
}

static void add_dialog_busy(struct add_dialog *ad, bool busy)
{
	ad->busy = busy;
	if (ad->gone)
		return;
	gtk_dialog_set_response_sensitive(GTK_DIALOG(ad->dialog), RESP_TEST, !busy);
	gtk_dialog_set_response_sensitive(GTK_DIALOG(ad->dialog), GTK_RESPONSE_OK, !busy);
}

static const char *field(const struct add_dialog *ad, int i)
{
	return gtk_entry_get_text(GTK_ENTRY(ad->entry[i]));
}

/* Test connection: a "probe" request to the daemon, from a thread. */
struct probe_job {
	struct add_dialog *ad;
	char *request;                  /* JSON line; holds the secret: wiped */
	char *answer;                   /* plain text for the dialog */
	bool ok;
};

static gboolean probe_done(gpointer data)
{
	struct probe_job *j = data;

	add_dialog_busy(j->ad, false);
	add_dialog_say(j->ad, j->answer, j->ok);
	g_object_unref(j->ad->dialog);
	g_free(j->answer);
	g_free(j);
	return G_SOURCE_REMOVE;
}

static gpointer probe_run(gpointer data)
{
	struct probe_job *j = data;
	int fd = ctl_connect();
	char *line = NULL;
	cJSON *ans;

	if (fd >= 0) {
		if (ctl_write_line(fd, j->request) == 0)
			line = ctl_read_line(fd, 60000);
		close(fd);
	}
	memset(j->request, 0, strlen(j->request));
	g_free(j->request);
	ans = line ? cJSON_Parse(line) : NULL;
	free(line);
	if (!ans) {
		j->answer = g_strdup(fd < 0 ? "The CloudMount daemon is not running." : "The daemon did not answer.");
	} else {
		const cJSON *ok = cJSON_GetObjectItemCaseSensitive(ans, "ok");
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(ans, "error");
		const cJSON *hint = cJSON_GetObjectItemCaseSensitive(ans, "hint");
		j->ok = cJSON_IsTrue(ok);
		if (j->ok)
			j->answer = g_strdup("Connected: the bucket answers.");
		else
			j->answer = g_strdup_printf("%s%s%s", cJSON_IsString(err) ? err->valuestring : "failed",
						    cJSON_IsString(hint) ? "\n" : "",
						    cJSON_IsString(hint) ? hint->valuestring : "");
		cJSON_Delete(ans);
	}
	g_idle_add(probe_done, j);
	return NULL;
}

static void add_dialog_test(struct add_dialog *ad)
{
	struct probe_job *j = g_new0(struct probe_job, 1);
	cJSON *req = cJSON_CreateObject();

	cJSON_AddStringToObject(req, "cmd", "probe");
	cJSON_AddStringToObject(req, "url", field(ad, F_URL));
	cJSON_AddStringToObject(req, "endpoint", field(ad, F_ENDPOINT));
	cJSON_AddStringToObject(req, "region", field(ad, F_REGION));
	cJSON_AddBoolToObject(req, "path_style",
			      gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(ad->path_style)));
	cJSON_AddStringToObject(req, "access_key_id", field(ad, F_KEY_ID));
	cJSON_AddStringToObject(req, "secret", field(ad, F_SECRET));
	j->request = cJSON_PrintUnformatted(req);
	/* wipe the secret's copy inside the tree before freeing it */
	{
		cJSON *sec = cJSON_GetObjectItemCaseSensitive(req, "secret");
		memset(sec->valuestring, 0, strlen(sec->valuestring));
	}
	cJSON_Delete(req);
	j->ad = ad;
	g_object_ref(ad->dialog);
	add_dialog_busy(ad, true);
	add_dialog_say(ad, "Testing…", true);
	g_thread_unref(g_thread_new("cm-probe", probe_run, j));
}

struct add_job {
	struct add_dialog *ad;
	char *name;
};

static void add_done(GObject *src, GAsyncResult *res, gpointer data)
{
	struct add_job *j = data;
	GError *err = NULL;
	char *out = NULL, *errout = NULL;
	GSubprocess *p = G_SUBPROCESS(src);

	add_dialog_busy(j->ad, false);
	if (!g_subprocess_communicate_utf8_finish(p, res, &out, &errout, &err)) {
		add_dialog_say(j->ad, err->message, false);
		g_error_free(err);
	} else if (!g_subprocess_get_successful(p)) {
		add_dialog_say(j->ad, errout && *errout ? g_strstrip(errout) : "Adding the bucket failed.", false);
	} else {
		/* the daemon re-reads cloudmount.conf; events then bring the new remote */
		int fd = ctl_connect();
		if (fd >= 0) {
			cJSON *req = cJSON_CreateObject();
			char *line;
			cJSON_AddStringToObject(req, "cmd", "reload");
			line = ctl_call(fd, req, 5000);
			cJSON_Delete(req);
			free(line);
			close(fd);
		}
		if (load_status())
			rebuild();
		ctl_async("mount", j->name);
		if (!j->ad->gone)
			gtk_widget_destroy(j->ad->dialog);
	}
	g_object_unref(j->ad->dialog);
	g_free(out);
	g_free(errout);
	g_free(j->name);
	g_free(j);
}

/* Add and mount: `cloudmount remote add` (the secret on its stdin, as a user would type it). */
static void add_dialog_add(struct add_dialog *ad)
{
	GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
	const char *key_id = field(ad, F_KEY_ID);
	GError *err = NULL;
	GSubprocess *p;
	char *secret;

	if (!*field(ad, F_NAME) || !*field(ad, F_URL)) {
		add_dialog_say(ad, "A name and an s3:// URL are needed.", false);
		return;
	}
	g_ptr_array_add(argv, cloudmount_bin());
	g_ptr_array_add(argv, g_strdup("remote"));
	g_ptr_array_add(argv, g_strdup("add"));
	g_ptr_array_add(argv, g_strdup(field(ad, F_NAME)));
	g_ptr_array_add(argv, g_strdup(field(ad, F_URL)));
	if (*field(ad, F_ENDPOINT)) {
		g_ptr_array_add(argv, g_strdup("--endpoint"));
		g_ptr_array_add(argv, g_strdup(field(ad, F_ENDPOINT)));
	}
	if (*field(ad, F_REGION)) {
		g_ptr_array_add(argv, g_strdup("--region"));
		g_ptr_array_add(argv, g_strdup(field(ad, F_REGION)));
	}
	if (gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(ad->path_style)))
		g_ptr_array_add(argv, g_strdup("--path-style"));
	if (*key_id) {
		g_ptr_array_add(argv, g_strdup("--access-key-id"));
		g_ptr_array_add(argv, g_strdup(key_id));
	}
	g_ptr_array_add(argv, NULL);
	p = g_subprocess_newv((const char *const *)argv->pdata,
			      G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
				      G_SUBPROCESS_FLAGS_STDERR_PIPE,
			      &err);
	g_ptr_array_free(argv, TRUE);
	if (!p) {
		add_dialog_say(ad, err->message, false);
		g_error_free(err);
		return;
	}
	{
		struct add_job *j = g_new0(struct add_job, 1);
		j->ad = ad;
		j->name = g_strdup(field(ad, F_NAME));
		g_object_ref(ad->dialog);
		add_dialog_busy(ad, true);
		add_dialog_say(ad, "Adding…", true);
		secret = g_strdup_printf("%s\n", field(ad, F_SECRET));
		g_subprocess_communicate_utf8_async(p, *key_id ? secret : NULL, NULL, add_done, j);
		memset(secret, 0, strlen(secret));
		g_free(secret);
	}
	g_object_unref(p);
}

static void add_dialog_response(GtkDialog *d, int response, gpointer data)
{
	struct add_dialog *ad = data;

	if (response == RESP_TEST) {
		if (!ad->busy)
			add_dialog_test(ad);
	} else if (response == GTK_RESPONSE_OK) {
		if (!ad->busy)
			add_dialog_add(ad);
	} else {
		gtk_widget_destroy(GTK_WIDGET(d));
	}
}

static void add_dialog_destroyed(GtkWidget *w, gpointer data)
{
	struct add_dialog *ad = data;

	ad->gone = true;
	T.add_dialog = NULL;
}

static GtkWidget *add_row(GtkGrid *grid, int row, const char *label, GtkWidget *w)
{
	GtkWidget *l = gtk_label_new_with_mnemonic(label);

	gtk_widget_set_halign(l, GTK_ALIGN_END);
	gtk_label_set_mnemonic_widget(GTK_LABEL(l), w);
	gtk_widget_set_hexpand(w, TRUE);
	gtk_grid_attach(grid, l, 0, row, 1, 1);
	gtk_grid_attach(grid, w, 1, row, 1, 1);
	return w;
}

static void add_bucket_dialog(void)
{
	static const char *const labels[F_COUNT] = { "_Name", "_URL", "_Endpoint", "_Region",
						     "Access _key ID", "_Secret access key" };
	static const char *const hints[F_COUNT] = { "photos", "s3://bucket or s3://bucket/prefix",
						    "https://s3.example.com (empty: AWS)", "us-east-1",
						    "empty: the AWS credential chain", "" };
	struct add_dialog *ad;
	GtkWidget *grid = gtk_grid_new();
	int row = 0;

	if (T.add_dialog) {
		gtk_window_present(GTK_WINDOW(T.add_dialog));
		return;
	}
	ad = g_new0(struct add_dialog, 1);
	ad->dialog = gtk_dialog_new_with_buttons("Add bucket", NULL, 0, "_Test connection", RESP_TEST,
						 "_Cancel", GTK_RESPONSE_CANCEL, "_Add and mount", GTK_RESPONSE_OK,
						 NULL);
	gtk_dialog_set_default_response(GTK_DIALOG(ad->dialog), GTK_RESPONSE_OK);
	gtk_grid_set_row_spacing(GTK_GRID(grid), 6);
	gtk_grid_set_column_spacing(GTK_GRID(grid), 8);
	gtk_container_set_border_width(GTK_CONTAINER(grid), 12);
	for (int i = 0; i < F_COUNT; i++) {
		GtkWidget *e = gtk_entry_new();
		gtk_entry_set_placeholder_text(GTK_ENTRY(e), hints[i]);
		gtk_entry_set_width_chars(GTK_ENTRY(e), 36);
		if (i == F_SECRET) {
			gtk_entry_set_visibility(GTK_ENTRY(e), FALSE);
			gtk_entry_set_input_purpose(GTK_ENTRY(e), GTK_INPUT_PURPOSE_PASSWORD);
		}
		gtk_entry_set_activates_default(GTK_ENTRY(e), TRUE);
		ad->entry[i] = add_row(GTK_GRID(grid), row++, labels[i], e);
		if (i == F_REGION) {
			ad->path_style = gtk_check_button_new_with_mnemonic("_Path-style addressing (MinIO, Ceph)");
			gtk_grid_attach(GTK_GRID(grid), ad->path_style, 1, row++, 1, 1);
		}
	}
	ad->result = gtk_label_new("");
	gtk_label_set_line_wrap(GTK_LABEL(ad->result), TRUE);
	gtk_label_set_selectable(GTK_LABEL(ad->result), TRUE);
	gtk_label_set_xalign(GTK_LABEL(ad->result), 0);
	gtk_grid_attach(GTK_GRID(grid), ad->result, 0, row, 2, 1);
	gtk_container_add(GTK_CONTAINER(gtk_dialog_get_content_area(GTK_DIALOG(ad->dialog))), grid);
	g_signal_connect(ad->dialog, "response", G_CALLBACK(add_dialog_response), ad);
	g_signal_connect(ad->dialog, "destroy", G_CALLBACK(add_dialog_destroyed), ad);
	/* the struct lives as long as the dialog object: jobs hold a reference */
	g_object_set_data_full(G_OBJECT(ad->dialog), "cm-add-dialog", ad, g_free);
	T.add_dialog = ad->dialog;
	gtk_widget_show_all(ad->dialog);
	gtk_window_present(GTK_WINDOW(ad->dialog));
}

/* Quit: mounts stay up, unless cloudmount.conf says [tray] unmount-on-quit = true. */
static void quit_tray(void)
{
	struct remotes rs;
	struct cm_err err;

	cm_err_clear(&err);
	if (remotes_load(NULL, &rs, &err) != CM_OK) {
		g_warning("%s", err.message);
	} else {
		if (rs.tray_unmount_on_quit) {
			for (size_t i = 0; i < T.n; i++) {
				enum mm_state st = T.remotes[i].state;
				if (st == MM_STATE_MOUNTED || st == MM_STATE_DEGRADED || st == MM_STATE_MOUNTING) {
					g_message("quit: unmounting %s", T.remotes[i].name);
					ctl_request("unmount", T.remotes[i].name);
				}
			}
		}
		remotes_release(&rs);
	}
	gtk_main_quit();
}

static void on_activate(GtkMenuItem *mi, gpointer data)
{
	enum mm_action act = (enum mm_action)GPOINTER_TO_INT(data);
	const char *remote = g_object_get_data(G_OBJECT(mi), "cm-remote");
	const char *path = g_object_get_data(G_OBJECT(mi), "cm-path");
	bool checked = GPOINTER_TO_INT(g_object_get_data(G_OBJECT(mi), "cm-checked"));

	switch (act) {
	case MM_ACT_MOUNT:
		ctl_async("mount", remote);
		break;
	case MM_ACT_UNMOUNT:
		ctl_async("unmount", remote);
		break;
	case MM_ACT_OPEN_FOLDER: {
		GError *err = NULL;
		char *uri = g_filename_to_uri(path, NULL, &err);
		if (!uri || !g_app_info_launch_default_for_uri(uri, NULL, &err)) {
			g_warning("open %s: %s", path, err ? err->message : "?");
			g_clear_error(&err);
		}
		g_free(uri);
		break;
	}
	case MM_ACT_COPY_PATH:
		gtk_clipboard_set_text(gtk_clipboard_get(GDK_SELECTION_CLIPBOARD), path, -1);
		break;
	case MM_ACT_ADD_BUCKET:
		add_bucket_dialog();
		break;
	case MM_ACT_AUTOSTART_TOGGLE:
		run_autostart(!checked);
		break;
	case MM_ACT_MOUNT_ALL:
		for (size_t i = 0; i < T.n; i++)
			if (T.remotes[i].state == MM_STATE_UNMOUNTED || T.remotes[i].state == MM_STATE_ERROR)
				ctl_async("mount", T.remotes[i].name);
		break;
	case MM_ACT_QUIT:
		quit_tray();
		break;
	default:
		break;
	}
}

/* ---- the menu ------------------------------------------------------- */

static void destroy_child(GtkWidget *w, gpointer data)
{
	gtk_widget_destroy(w);
}

static void rebuild(void)
{
	struct mm_menu m;
	GtkMenuShell *shell = GTK_MENU_SHELL(T.menu);

	mm_menu_build(T.remotes, T.n, T.autostart, &m);
	gtk_container_foreach(GTK_CONTAINER(T.menu), destroy_child, NULL);
	for (size_t i = 0; i < m.n_items; i++) {
		const struct mm_item *it = &m.items[i];
		GtkWidget *w;

		switch (it->kind) {
		case MM_ITEM_SUBMENU_END:
			shell = GTK_MENU_SHELL(T.menu);
			continue;
		case MM_ITEM_SEPARATOR:
			w = gtk_separator_menu_item_new();
			break;
		case MM_ITEM_SUBMENU_BEGIN: {
			GtkWidget *sub = gtk_menu_new();
			w = gtk_menu_item_new_with_label(it->label);
			gtk_menu_item_set_submenu(GTK_MENU_ITEM(w), sub);
			gtk_widget_show(w);
			gtk_menu_shell_append(GTK_MENU_SHELL(T.menu), w);
			shell = GTK_MENU_SHELL(sub);
			continue;
		}
		case MM_ITEM_CHECK:
			w = gtk_check_menu_item_new_with_label(it->label);
			gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(w), it->checked);
			break;
		default:
			w = gtk_menu_item_new_with_label(it->label);
			break;
		}
		gtk_widget_set_sensitive(w, it->kind != MM_ITEM_LABEL && it->enabled);
		if (it->action != MM_ACT_NONE) {
			if (it->remote)
				g_object_set_data_full(G_OBJECT(w), "cm-remote", g_strdup(it->remote), g_free);
			if (it->path)
				g_object_set_data_full(G_OBJECT(w), "cm-path", g_strdup(it->path), g_free);
			g_object_set_data(G_OBJECT(w), "cm-checked", GINT_TO_POINTER(it->checked));
			/* connected after set_active, so building does not fire it */
			g_signal_connect(w, "activate", G_CALLBACK(on_activate), GINT_TO_POINTER(it->action));
		}
		gtk_widget_show(w);
		gtk_menu_shell_append(shell, w);
	}
	app_indicator_set_icon_full(T.ind, m.icon_name, m.tooltip);
	app_indicator_set_title(T.ind, m.tooltip);
	mm_menu_release(&m);
}

/* ---- the event stream ----------------------------------------------- */

static void handle_line(const char *line)
{
	cJSON *j = cJSON_Parse(line);
	const cJSON *ev;
	struct mm_remote r;

	if (!j)
		return;
	ev = cJSON_GetObjectItemCaseSensitive(j, "event");
	if (cJSON_IsString(ev) && !strcmp(ev->valuestring, "state") && mm_remote_from_json(j, &r) == 0) {
		maybe_notify(&r);
		snapshot_put(&r);
		rebuild();
	}
	cJSON_Delete(j);
}

static gboolean retry_cb(gpointer data)
{
	T.retry_id = 0;
	connect_daemon(false);
	return G_SOURCE_REMOVE;
}

static void lost_daemon(void)
{
	if (T.sub_fd >= 0)
		close(T.sub_fd);
	T.sub_fd = -1;
	T.sub_watch = 0;
	g_string_truncate(T.inbuf, 0);
	for (size_t i = 0; i < T.n; i++)
		T.remotes[i].state = MM_STATE_UNKNOWN;
	rebuild();
	if (!T.retry_id)
		T.retry_id = g_timeout_add_seconds(2, retry_cb, NULL);
}

static gboolean on_events(GIOChannel *ch, GIOCondition cond, gpointer data)
{
	char chunk[8192];
	ssize_t n;

	for (;;) {
		n = read(T.sub_fd, chunk, sizeof(chunk));
		if (n > 0) {
			g_string_append_len(T.inbuf, chunk, n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	for (;;) {
		char *nl = memchr(T.inbuf->str, '\n', T.inbuf->len);
		if (!nl)
			break;
		*nl = '\0';
		handle_line(T.inbuf->str);
		g_string_erase(T.inbuf, 0, nl - T.inbuf->str + 1);
	}
	if (T.inbuf->len > CTL_MAX_LINE)
		g_string_truncate(T.inbuf, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
		lost_daemon();
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static bool subscribe(void)
{
	int fd = ctl_connect();
	GIOChannel *ch;

	if (fd < 0)
		return false;
	if (ctl_write_line(fd, "{\"cmd\":\"subscribe\"}") < 0) {
		close(fd);
		return false;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	T.sub_fd = fd;
	ch = g_io_channel_unix_new(fd);
	T.sub_watch = g_io_add_watch(ch, G_IO_IN | G_IO_HUP | G_IO_ERR, on_events, NULL);
	g_io_channel_unref(ch);
	return true;
}

static void spawn_daemon(void)
{
	char *bin = cloudmount_bin();
	char *argv[] = { bin, (char *)"daemon", NULL };
	GError *err = NULL;

	if (!g_spawn_async(NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err)) {
		g_warning("starting %s daemon: %s", bin, err->message);
		g_error_free(err);
	}
	g_free(bin);
}

/* Connect (at start: spawn the daemon when none answers, then wait up to 5 s). */
static void connect_daemon(bool spawn)
{
	int fd = ctl_connect();

	if (fd < 0 && spawn && (errno == ENOENT || errno == ECONNREFUSED)) {
		spawn_daemon();
		for (int i = 0; i < 50 && fd < 0; i++) {
			g_usleep(100000);
			fd = ctl_connect();
		}
	}
	if (fd >= 0)
		close(fd);
	T.autostart = platform_autostart_enabled() != 0;
	if (fd < 0 || !subscribe() || !load_status()) {
		if (T.sub_fd >= 0) {
			g_source_remove(T.sub_watch);
			close(T.sub_fd);
			T.sub_fd = -1;
		}
		if (!T.retry_id)
			T.retry_id = g_timeout_add_seconds(2, retry_cb, NULL);
		rebuild();
		return;
	}
	rebuild();
}

int main(int argc, char **argv)
{
	char *self = g_file_read_link("/proc/self/exe", NULL);
	const char *dir;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: cloudmount-tray\nThe CloudMount status icon: shows the remotes of "
			       "`cloudmount daemon` (started if none runs).\n");
			return 0;
		}
	}
	gtk_init(&argc, &argv);
	if (self) {
		T.exe_dir = g_path_get_dirname(self);
		g_free(self);
	}
	T.inbuf = g_string_new(NULL);
	T.told = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	T.menu = GTK_MENU(gtk_menu_new());
	T.ind = app_indicator_new("cloudmount", "cloudmount-idle", APP_INDICATOR_CATEGORY_APPLICATION_STATUS);
	dir = icon_dir();
	if (dir) {
		app_indicator_set_icon_theme_path(T.ind, dir);
		gtk_icon_theme_append_search_path(gtk_icon_theme_get_default(), dir);
	}
	app_indicator_set_status(T.ind, APP_INDICATOR_STATUS_ACTIVE);
	rebuild();
	app_indicator_set_menu(T.ind, T.menu);
	connect_daemon(true);
	gtk_main();
	if (T.sub_fd >= 0)
		close(T.sub_fd);
	snapshot_clear();
	g_hash_table_destroy(T.told);
	if (notify_is_initted())
		notify_uninit();
	return 0;
}

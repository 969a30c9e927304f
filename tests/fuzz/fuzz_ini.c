/*
 * fuzz_ini.c - libFuzzer target for the INI reader: parses the input as a file,
 * looks a few things up (so lookups run over whatever was built) and releases it.
 * Any crash, leak or sanitizer report is a bug in ini.c.
 */
#include <stddef.h>
#include <stdint.h>

#include "config/ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ini_file f;
	struct cm_err err;

	cm_err_clear(&err);
	if (ini_parse((const char *)data, size, "fuzz.ini", &f, &err) != CM_OK)
		return 0;
	for (size_t i = 0; i < f.n_sections; i++) {
		const struct ini_section *s = &f.sections[i];

		(void)ini_get(&f, s->name, "region");
		for (size_t j = 0; j < s->n_entries; j++)
			(void)ini_get_sub(&f, s->name, s->entries[j].key, "addressing_style");
	}
	ini_file_release(&f);
	return 0;
}

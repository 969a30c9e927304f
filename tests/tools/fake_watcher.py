#!/usr/bin/python3
"""fake_watcher.py - a minimal org.kde.StatusNotifierWatcher for headless tray tests.

Owns org.kde.StatusNotifierWatcher on the session bus, accepts
RegisterStatusNotifierItem / RegisterStatusNotifierHost and exposes the
properties an AppIndicator looks at. Every registered item is written as one
line "SENDER PATH" to the file given with --items (appended, flushed), so a
test can find the indicator's unique bus name and object path.

With --notifications FILE it also owns org.freedesktop.Notifications (the
desktop notification server libnotify talks to) and appends one JSON line
{"summary", "body", "icon", "app"} per Notify call, so a test can count them.

Usage: /usr/bin/python3 fake_watcher.py [--items FILE] [--notifications FILE] [--timeout SECONDS]
(Debian's python3-dbus is for /usr/bin/python3.)
"""
import argparse
import json
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

IFACE = "org.kde.StatusNotifierWatcher"


class Watcher(dbus.service.Object):
    def __init__(self, bus, items_file):
        super().__init__(bus, "/StatusNotifierWatcher")
        self.items = []
        self.items_file = items_file

    @dbus.service.method(IFACE, in_signature="s", out_signature="", sender_keyword="sender")
    def RegisterStatusNotifierItem(self, service, sender=None):
        # an AppIndicator passes its object path; others pass a bus name
        if service.startswith("/"):
            name, path = sender, service
        else:
            name, path = service, "/StatusNotifierItem"
        entry = name + path
        if entry not in self.items:
            self.items.append(entry)
        with open(self.items_file, "a") as f:
            f.write("%s %s\n" % (name, path))
        self.StatusNotifierItemRegistered(entry)

    @dbus.service.method(IFACE, in_signature="s", out_signature="")
    def RegisterStatusNotifierHost(self, service):
        self.StatusNotifierHostRegistered()

    @dbus.service.signal(IFACE, signature="s")
    def StatusNotifierItemRegistered(self, service):
        pass

    @dbus.service.signal(IFACE, signature="s")
    def StatusNotifierItemUnregistered(self, service):
        pass

    @dbus.service.signal(IFACE, signature="")
    def StatusNotifierHostRegistered(self):
        pass

    def _props(self):
        return {
            "RegisteredStatusNotifierItems": dbus.Array(self.items, signature="s"),
            "IsStatusNotifierHostRegistered": dbus.Boolean(True),
            "ProtocolVersion": dbus.Int32(0),
        }

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, iface, prop):
        props = self._props()
        if prop not in props:
            raise dbus.exceptions.DBusException("no property " + prop,
                                                name="org.freedesktop.DBus.Error.InvalidArgs")
        return props[prop]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        return self._props()


NOTIFY_IFACE = "org.freedesktop.Notifications"


class Notifications(dbus.service.Object):
    def __init__(self, bus, out_file):
        super().__init__(bus, "/org/freedesktop/Notifications")
        self.out_file = out_file
        self.last_id = 0

    @dbus.service.method(NOTIFY_IFACE, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app, replaces_id, icon, summary, body, actions, hints, timeout):
        self.last_id += 1
        with open(self.out_file, "a") as f:
            f.write(json.dumps({"app": str(app), "icon": str(icon), "summary": str(summary),
                                "body": str(body)}) + "\n")
        return dbus.UInt32(self.last_id)

    @dbus.service.method(NOTIFY_IFACE, in_signature="", out_signature="as")
    def GetCapabilities(self):
        return dbus.Array(["body"], signature="s")

    @dbus.service.method(NOTIFY_IFACE, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("fake_watcher", "cloudmount-tests", "1.0", "1.2")

    @dbus.service.method(NOTIFY_IFACE, in_signature="u", out_signature="")
    def CloseNotification(self, nid):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", help="be the watcher; the file gets one 'SENDER PATH' line per registration")
    ap.add_argument("--notifications", help="be the notification server; the file gets one JSON line per Notify")
    ap.add_argument("--timeout", type=float, default=120, help="exit after this many seconds")
    args = ap.parse_args()
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    names = []  # kept for their lifetime
    if args.items:
        names.append(dbus.service.BusName(IFACE, bus))
        Watcher(bus, args.items)
    if args.notifications:
        names.append(dbus.service.BusName(NOTIFY_IFACE, bus))
        Notifications(bus, args.notifications)
    loop = GLib.MainLoop()
    GLib.timeout_add(int(args.timeout * 1000), loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""An IRC client built on the third-party `irc` library (PyPI `irc`), driven by tests/irc_clients.rs.

    python3 irc_lib_client.py HOST PORT NICK [SECONDS]

Commands, one per line on standard input:

    join CHANNEL | say TARGET TEXT | act TARGET TEXT | nick NEW | quit [REASON]

Everything the library reports is printed as one line on standard output:

    EVENT welcome NICK                 EVENT privmsg FROM TEXT
    EVENT join NICK CHANNEL            EVENT action FROM TARGET TEXT
    EVENT pubmsg FROM CHANNEL TEXT     EVENT nick OLD NEW
    EVENT quit NICK REASON             EVENT error NUMERIC ARGS...
    EVENT disconnect

The script ends by itself: after `quit`, when its input ends, when the server closes the
connection, or after SECONDS (default 20) at the latest.
"""

import queue
import sys
import threading
import time

import irc.client
import irc.events

# Numeric replies from 400 to 599 are refusals; the library names them (433 is "nicknameinuse").
ERRORS = {name: code for code, name in irc.events.numeric.items() if code[0] in "45"}


def emit(*words):
    print("EVENT", *words, flush=True)


class Client(irc.client.SimpleIRCClient):
    """Turns library events into EVENT lines; `SimpleIRCClient` calls `on_<event type>`."""

    def __init__(self):
        super().__init__()
        self.done = False
        for name in ERRORS:
            self.reactor.add_global_handler(name, self.on_refusal)

    def on_welcome(self, connection, event):
        emit("welcome", event.target)

    def on_join(self, connection, event):
        emit("join", event.source.nick, event.target)

    def on_pubmsg(self, connection, event):
        emit("pubmsg", event.source.nick, event.target, event.arguments[0])

    def on_privmsg(self, connection, event):
        emit("privmsg", event.source.nick, event.arguments[0])

    def on_action(self, connection, event):
        emit("action", event.source.nick, event.target, event.arguments[0])

    def on_nick(self, connection, event):
        emit("nick", event.source.nick, event.target)

    def on_quit(self, connection, event):
        emit("quit", event.source.nick, *event.arguments)

    def on_refusal(self, connection, event):
        emit("error", ERRORS[event.type], *event.arguments)

    def on_disconnect(self, connection, event):
        emit("disconnect")
        self.done = True

    def command(self, line):
        verb, _, rest = line.partition(" ")
        target, _, text = rest.partition(" ")
        if verb == "join":
            self.connection.join(target)
        elif verb == "say":
            self.connection.privmsg(target, text)
        elif verb == "act":
            self.connection.action(target, text)
        elif verb == "nick":
            self.connection.nick(target)
        elif verb == "quit":
            self.connection.quit(rest)
        else:
            print(f"unknown command: {line}", file=sys.stderr, flush=True)


def read_commands(commands):
    """Feeds standard input to the reactor loop; `None` marks its end."""
    for line in sys.stdin:
        commands.put(line.rstrip("\n"))
    commands.put(None)


def main():
    host, port, nick = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    deadline = time.monotonic() + (float(sys.argv[4]) if len(sys.argv) > 4 else 20)
    client = Client()
    client.connect(host, port, nick, username=nick, ircname="irc library client")
    commands = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    while not client.done:
        if time.monotonic() > deadline:
            print("irc_lib_client: timed out", file=sys.stderr, flush=True)
            return 1
        client.reactor.process_once(timeout=0.05)
        while not commands.empty():
            line = commands.get()
            if line is None:
                client.connection.disconnect("input ended")
                return 0
            client.command(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

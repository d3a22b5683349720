//! `HELP [subject]`: how to use each command, in 704/705/706 (524 for what has no help).
//! Every command of the command table has a text here (a unit test checks it).

use super::commands;
use super::message::Message;
use super::numeric::*;
use super::session::Session;

/// Each command's usage line and what it does, in a few lines.
const TOPICS: &[(&str, &[&str])] = &[
    ("ADMIN", &["ADMIN [server]", "Says who runs the server."]),
    (
        "AUTHENTICATE",
        &[
            "AUTHENTICATE PLAIN, then AUTHENTICATE base64(\\0account\\0password)",
            "Logs in to your account with SASL PLAIN (CAP REQ sasl first); AUTHENTICATE * aborts.",
        ],
    ),
    ("AWAY", &["AWAY [:message]", "Marks you away with a message; without one, back."]),
    (
        "BATCH",
        &[
            "BATCH +ref draft/multiline target ... BATCH -ref",
            "Sends the PRIVMSG lines tagged batch=ref between them as one message (draft/multiline).",
        ],
    ),
    ("CAP", &["CAP LS [302] | LIST | REQ :caps | END", "Negotiates IRCv3 capabilities; CAP LS lists them."]),
    (
        "CHATHISTORY",
        &[
            "CHATHISTORY LATEST|BEFORE|AFTER|AROUND target msgid=ID|timestamp=TIME|* limit",
            "CHATHISTORY BETWEEN target bound bound limit | TARGETS bound bound limit",
            "Reads the stored history of a room you are in or of a private conversation.",
        ],
    ),
    ("HELP", &["HELP [command]", "Lists the commands, or explains one."]),
    ("INFO", &["INFO [server]", "Says what the server is and since when it runs."]),
    ("INVITE", &["INVITE nick #room", "Invites someone into a room you are in (operators only in +i rooms)."]),
    ("ISON", &["ISON nick [nick ...]", "Says which of the nicks are online."]),
    ("JOIN", &["JOIN #room[,#room2] [key[,key2]] | JOIN 0", "Joins rooms (created if new); JOIN 0 leaves all."]),
    ("KICK", &["KICK #room nick[,nick2] [:reason]", "Removes someone from a room (room operators)."]),
    ("KILL", &["KILL nick :reason", "Disconnects a user (server operators)."]),
    ("LINKS", &["LINKS", "Lists the servers of the network: this one alone."]),
    ("LIST", &["LIST [#room[,#room2]]", "Lists rooms with their member counts and topics."]),
    ("LUSERS", &["LUSERS", "Counts the users, operators and rooms."]),
    (
        "MODE",
        &[
            "MODE #room [+|-modes [args]] | MODE yournick [+|-modes]",
            "Room modes: o v b i k l m n s t. Your modes: B (bot), i (invisible), w (wallops), -o.",
        ],
    ),
    (
        "MONITOR",
        &[
            "MONITOR + nick[,nick2] | - nick[,nick2] | C | L | S",
            "Tells you when the nicks come online or go offline (730/731): + adds, - removes,",
            "C clears the list, L lists it, S shows who of it is online now.",
        ],
    ),
    ("MOTD", &["MOTD", "Shows the message of the day."]),
    ("NAMES", &["NAMES #room[,#room2]", "Lists the members of rooms."]),
    ("NICK", &["NICK newnick", "Changes your nick."]),
    ("NOTICE", &["NOTICE target[,target2] :text", "Like PRIVMSG, but never answered automatically."]),
    ("OPER", &["OPER name password", "Makes you a server operator (see charla serve --oper)."]),
    ("PART", &["PART #room[,#room2] [:reason]", "Leaves rooms."]),
    ("PASS", &["PASS password", "Sent before registering; this server needs none."]),
    ("PING", &["PING token", "Asks the server to answer PONG token."]),
    ("PONG", &["PONG token", "Answers the server's PING."]),
    (
        "PRIVMSG",
        &[
            "PRIVMSG target[,target2] :text",
            "Says text to a room, a nick, or a room's operators (@#room) or voiced members (+#room).",
        ],
    ),
    (
        "REDACT",
        &[
            "REDACT target msgid [:reason]",
            "Removes a message: your own, or anyone's in a room you are an operator of.",
        ],
    ),
    (
        "KLINE",
        &[
            "KLINE [minutes] mask :reason",
            "Server operators: bans nick!user@host, user@host or an address from the server (0 or none: for good).",
        ],
    ),
    (
        "MARKREAD",
        &[
            "MARKREAD target [timestamp=YYYY-MM-DDThh:mm:ss.sssZ]",
            "Shows or moves how far your account has read a room or conversation (draft/read-marker).",
        ],
    ),
    ("QUIT", &["QUIT [:reason]", "Disconnects."]),
    (
        "REGISTER",
        &[
            "REGISTER <account|*> <email|*> <password>",
            "Registers an account (* = your nick) and logs you in; the nick is then yours alone.",
            "Also: /msg NickServ REGISTER password, and IDENTIFY [account] password to log in.",
        ],
    ),
    ("SETNAME", &["SETNAME :new real name", "Changes your real name (up to NAMELEN bytes)."]),
    ("TAGMSG", &["TAGMSG target", "Sends message tags alone, such as +typing (needs message-tags)."]),
    ("TIME", &["TIME", "Shows the server's time."]),
    ("UNKLINE", &["UNKLINE mask", "Server operators: lifts a server ban."]),
    ("VERIFY", &["VERIFY <account> <code>", "Accounts here need no verification code: REGISTER is enough."]),
    ("TOPIC", &["TOPIC #room [:new topic]", "Shows a room's topic, or sets it (+t: operators only)."]),
    ("USER", &["USER username 0 * :real name", "Registers your connection, with NICK."]),
    ("USERHOST", &["USERHOST nick [nick ...]", "Shows the user@host of up to five nicks."]),
    ("VERSION", &["VERSION", "Shows the server's version and features."]),
    ("WALLOPS", &["WALLOPS :text", "Server operators: tells everyone with user mode +w."]),
    ("WHO", &["WHO #room|mask [%fields[,token]]", "Lists users: in a room, or matching a mask."]),
    ("WHOIS", &["WHOIS nick", "Shows who a user is, their rooms and idle time."]),
    ("WHOWAS", &["WHOWAS nick [count]", "Shows who recently used a nick that is gone."]),
];

/// `HELP` (the index) or `HELP subject`.
pub fn help(session: &mut Session, message: &Message) {
    let Some(subject) = message.params.first().filter(|s| !s.is_empty()) else {
        let mut names: Vec<&str> = commands::command_names().collect();
        names.sort_unstable();
        session.numeric(RPL_HELPSTART, &["*", "** charla: the commands of this server **"]);
        for line in names.chunks(8) {
            session.numeric(RPL_HELPTXT, &["*", &line.join(" ")]);
        }
        session.numeric(RPL_HELPTXT, &["*", "HELP command explains one."]);
        return session.numeric(RPL_ENDOFHELP, &["*", "End of /HELP"]);
    };
    let wanted = subject.to_ascii_uppercase();
    match topic(&wanted) {
        Some(lines) => {
            session.numeric(RPL_HELPSTART, &[&wanted, lines[0]]);
            for line in &lines[1..] {
                session.numeric(RPL_HELPTXT, &[&wanted, line]);
            }
            session.numeric(RPL_ENDOFHELP, &[&wanted, "End of /HELP"]);
        }
        None => session.numeric(ERR_HELPNOTFOUND, &[subject, "No help on that; HELP lists the commands"]),
    }
}

fn topic(name: &str) -> Option<&'static [&'static str]> {
    TOPICS.iter().find(|(n, _)| *n == name).map(|(_, lines)| *lines)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_has_help() {
        for name in super::commands::command_names() {
            assert!(super::topic(name).is_some(), "HELP has no text for {name}");
        }
    }
}

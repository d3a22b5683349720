//! Numeric replies by name, and how hub errors become numerics.

use crate::hub::HubError;

pub const RPL_WELCOME: &str = "001";
pub const RPL_YOURHOST: &str = "002";
pub const RPL_CREATED: &str = "003";
pub const RPL_MYINFO: &str = "004";
pub const RPL_ISUPPORT: &str = "005";
pub const RPL_UMODEIS: &str = "221";
pub const RPL_LUSERCLIENT: &str = "251";
pub const RPL_LUSEROP: &str = "252";
pub const RPL_LUSERUNKNOWN: &str = "253";
pub const RPL_LUSERCHANNELS: &str = "254";
pub const RPL_LUSERME: &str = "255";
pub const RPL_ADMINME: &str = "256";
pub const RPL_ADMINLOC1: &str = "257";
pub const RPL_ADMINLOC2: &str = "258";
pub const RPL_ADMINEMAIL: &str = "259";
pub const RPL_LOCALUSERS: &str = "265";
pub const RPL_GLOBALUSERS: &str = "266";
pub const RPL_AWAY: &str = "301";
pub const RPL_USERHOST: &str = "302";
pub const RPL_ISON: &str = "303";
pub const RPL_UNAWAY: &str = "305";
pub const RPL_NOWAWAY: &str = "306";
pub const RPL_WHOISUSER: &str = "311";
pub const RPL_WHOISSERVER: &str = "312";
pub const RPL_WHOISOPERATOR: &str = "313";
pub const RPL_WHOWASUSER: &str = "314";
pub const RPL_ENDOFWHO: &str = "315";
pub const RPL_WHOISIDLE: &str = "317";
pub const RPL_ENDOFWHOIS: &str = "318";
pub const RPL_WHOISCHANNELS: &str = "319";
pub const RPL_LISTSTART: &str = "321";
pub const RPL_LIST: &str = "322";
pub const RPL_LISTEND: &str = "323";
pub const RPL_CHANNELMODEIS: &str = "324";
pub const RPL_CREATIONTIME: &str = "329";
pub const RPL_NOTOPIC: &str = "331";
pub const RPL_TOPIC: &str = "332";
pub const RPL_TOPICWHOTIME: &str = "333";
pub const RPL_INVITING: &str = "341";
pub const RPL_VERSION: &str = "351";
pub const RPL_WHOREPLY: &str = "352";
pub const RPL_NAMREPLY: &str = "353";
pub const RPL_WHOSPCRPL: &str = "354";
pub const RPL_ENDOFNAMES: &str = "366";
pub const RPL_BANLIST: &str = "367";
pub const RPL_LINKS: &str = "364";
pub const RPL_ENDOFLINKS: &str = "365";
pub const RPL_ENDOFBANLIST: &str = "368";
pub const RPL_ENDOFWHOWAS: &str = "369";
pub const RPL_INFO: &str = "371";
pub const RPL_MOTD: &str = "372";
pub const RPL_ENDOFINFO: &str = "374";
pub const RPL_MOTDSTART: &str = "375";
pub const RPL_ENDOFMOTD: &str = "376";
pub const RPL_YOUREOPER: &str = "381";
pub const RPL_TIME: &str = "391";
pub const ERR_BANLISTFULL: &str = "478";
pub const ERR_UNKNOWNERROR: &str = "400";
pub const ERR_NOSUCHNICK: &str = "401";
pub const ERR_NOSUCHSERVER: &str = "402";
pub const ERR_NOSUCHCHANNEL: &str = "403";
pub const ERR_CANNOTSENDTOCHAN: &str = "404";
pub const ERR_TOOMANYCHANNELS: &str = "405";
pub const ERR_WASNOSUCHNICK: &str = "406";
pub const ERR_TOOMANYTARGETS: &str = "407";
pub const ERR_NOORIGIN: &str = "409";
pub const ERR_NORECIPIENT: &str = "411";
pub const ERR_NOTEXTTOSEND: &str = "412";
pub const ERR_INPUTTOOLONG: &str = "417";
pub const ERR_UNKNOWNCOMMAND: &str = "421";
pub const ERR_NONICKNAMEGIVEN: &str = "431";
pub const ERR_ERRONEUSNICKNAME: &str = "432";
pub const ERR_NICKNAMEINUSE: &str = "433";
pub const ERR_UNAVAILRESOURCE: &str = "437";
pub const ERR_USERNOTINCHANNEL: &str = "441";
pub const ERR_NOTONCHANNEL: &str = "442";
pub const ERR_USERONCHANNEL: &str = "443";
pub const ERR_NOTREGISTERED: &str = "451";
pub const ERR_NEEDMOREPARAMS: &str = "461";
pub const ERR_ALREADYREGISTERED: &str = "462";
pub const ERR_PASSWDMISMATCH: &str = "464";
pub const ERR_YOUREBANNEDCREEP: &str = "465";
pub const ERR_CHANNELISFULL: &str = "471";
pub const ERR_UNKNOWNMODE: &str = "472";
pub const ERR_INVITEONLYCHAN: &str = "473";
pub const ERR_BANNEDFROMCHAN: &str = "474";
pub const ERR_BADCHANNELKEY: &str = "475";
pub const ERR_NEEDREGGEDNICK: &str = "477";
pub const ERR_NOPRIVILEGES: &str = "481";
pub const ERR_CHANOPRIVSNEEDED: &str = "482";
pub const ERR_UMODEUNKNOWNFLAG: &str = "501";
pub const ERR_USERSDONTMATCH: &str = "502";
pub const ERR_INVALIDMODEPARAM: &str = "696";
pub const ERR_INVALIDCAPCMD: &str = "410";
// IRCv3 and modern additions: bot mode, MONITOR, HELP.
pub const RPL_WHOISBOT: &str = "335";
pub const ERR_HELPNOTFOUND: &str = "524";
pub const RPL_HELPSTART: &str = "704";
pub const RPL_HELPTXT: &str = "705";
pub const RPL_ENDOFHELP: &str = "706";
pub const RPL_MONONLINE: &str = "730";
pub const RPL_MONOFFLINE: &str = "731";
pub const RPL_MONLIST: &str = "732";
pub const RPL_ENDOFMONLIST: &str = "733";
pub const ERR_MONLISTFULL: &str = "734";
// TLS: WHOIS's secure-connection and certificate lines.
pub const RPL_WHOISCERTFP: &str = "276";
pub const RPL_WHOISSECURE: &str = "671";
// Accounts: WHOIS's account line and SASL.
pub const RPL_WHOISACCOUNT: &str = "330";
pub const RPL_LOGGEDIN: &str = "900";
pub const RPL_LOGGEDOUT: &str = "901";
pub const RPL_SASLSUCCESS: &str = "903";
pub const ERR_NICKLOCKED: &str = "902";
pub const ERR_SASLFAIL: &str = "904";
pub const ERR_SASLTOOLONG: &str = "905";
pub const ERR_SASLABORTED: &str = "906";
pub const ERR_SASLALREADY: &str = "907";
pub const RPL_SASLMECHS: &str = "908";

/// A hub error as an IRC numeric: the code and its parameters after the client's nick.
/// `sending` tells apart refusals to speak (404) from refusals to join (474, 473, …).
pub fn from_hub(error: &HubError, sending: bool) -> (&'static str, Vec<String>) {
    let text = error.to_string();
    let (code, mut params): (&str, Vec<String>) = match error {
        HubError::NickInUse(nick) => (ERR_NICKNAMEINUSE, vec![nick.clone()]),
        HubError::BadNick(nick) | HubError::NickBanned(nick, _) => (ERR_ERRONEUSNICKNAME, vec![nick.clone()]),
        HubError::BadRoom(room) | HubError::NoSuchRoom(room) | HubError::LookalikeRoom(room, _) => {
            (ERR_NOSUCHCHANNEL, vec![room.clone()])
        }
        HubError::NoSuchNick(nick) => (ERR_NOSUCHNICK, vec![nick.clone()]),
        HubError::NotInRoom(room) => (ERR_NOTONCHANNEL, vec![room.clone()]),
        HubError::UserNotInRoom { nick, room } => (ERR_USERNOTINCHANNEL, vec![nick.clone(), room.clone()]),
        HubError::UserInRoom { nick, room } => (ERR_USERONCHANNEL, vec![nick.clone(), room.clone()]),
        HubError::NeedOps(room) => (ERR_CHANOPRIVSNEEDED, vec![room.clone()]),
        HubError::Moderated(room) | HubError::External(room) => (ERR_CANNOTSENDTOCHAN, vec![room.clone()]),
        HubError::Banned(room) if sending => (ERR_CANNOTSENDTOCHAN, vec![room.clone()]),
        HubError::Banned(room) => (ERR_BANNEDFROMCHAN, vec![room.clone()]),
        HubError::InviteOnly(room) => (ERR_INVITEONLYCHAN, vec![room.clone()]),
        HubError::BadKey(room) => (ERR_BADCHANNELKEY, vec![room.clone()]),
        HubError::RoomFull(room) => (ERR_CHANNELISFULL, vec![room.clone()]),
        HubError::NeedAccount(room) => (ERR_NEEDREGGEDNICK, vec![room.clone()]),
        HubError::NoText => (ERR_NOTEXTTOSEND, vec![]),
        HubError::NotOper => (ERR_NOPRIVILEGES, vec![]),
        HubError::BadOperLogin | HubError::OperThrottled(_) => (ERR_PASSWDMISMATCH, vec![]),
        HubError::UnknownMode(c) => (ERR_UNKNOWNMODE, vec![c.to_string()]),
        HubError::ModeNeedsArg(_) => (ERR_NEEDMOREPARAMS, vec!["MODE".into()]),
        HubError::BadLimit(arg) => (ERR_INVALIDMODEPARAM, vec!["*".into(), "l".into(), arg.clone()]),
        HubError::BadModeArg(c, _) => (ERR_INVALIDMODEPARAM, vec!["*".into(), c.to_string(), "*".into()]),
        HubError::TooManyRooms(room, _) => (ERR_TOOMANYCHANNELS, vec![room.clone()]),
        HubError::CreatingTooFast(room, _) => (ERR_UNAVAILRESOURCE, vec![room.clone()]),
        HubError::BanListFull(room) => (ERR_BANLISTFULL, vec![room.clone(), "b".into()]),
        HubError::ServerBansFull => (ERR_BANLISTFULL, vec!["*".into(), "b".into()]),
        HubError::History(_) => (ERR_UNKNOWNERROR, vec!["PRIVMSG".into()]),
        // Answered as standard replies (`FAIL SETNAME …`, `FAIL REDACT …`) by their commands.
        HubError::BadRealname => (ERR_UNKNOWNERROR, vec!["SETNAME".into()]),
        HubError::NotYourMessage => (ERR_UNKNOWNERROR, vec!["REDACT".into()]),
        HubError::ShuttingDown => ("ERROR", vec![]),
        HubError::ServerBanned(_) => (ERR_YOUREBANNEDCREEP, vec![]),
    };
    params.push(text);
    (code, params)
}

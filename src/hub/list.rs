//! Which rooms a room list shows: the filters of IRC's `LIST` (ISUPPORT `ELIST=CMNTU`) and of
//! plain text's `/rooms MASK`, the same for every protocol.
//!
//! A list of a big server is long (100,000 rooms make 4 MB), so it is cheap to narrow down, and
//! the sessions send it in pieces as the client reads ([`PAGE`]), never all at once.

use crate::chat::text::wildcard_match;

/// Rooms a session queues at a time while sending a list; the next page goes once the
/// client's queue is nearly empty again.
pub const PAGE: usize = 100;

/// What a room list keeps; every condition must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Exactly these rooms (folded names), if any are named.
    pub names: Vec<String>,
    /// Names matching one of these wildcard masks (`M`), if any.
    pub masks: Vec<String>,
    /// Names matching none of these (`N`).
    pub not_masks: Vec<String>,
    /// More than this many members (`U`, `>n`).
    pub more_than: Option<usize>,
    /// Fewer than this many members (`U`, `<n`).
    pub fewer_than: Option<usize>,
    /// Created more than this many minutes ago (`C`, `C>n`); `created_within` for `C<n`.
    pub created_before: Option<u64>,
    pub created_within: Option<u64>,
    /// Topic set more than this many minutes ago (`T`, `T>n`); `topic_within` for `T<n`.
    pub topic_before: Option<u64>,
    pub topic_within: Option<u64>,
}

/// A condition of `LIST` that is not one of `ELIST`'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is no LIST condition: use #ROOM, a mask (#a*, !#a*), >N or <N users, C>N/C<N or T>N/T<N minutes")]
pub struct BadCondition(pub String);

impl ListFilter {
    /// The filter of `LIST`'s first parameter: comma-separated room names, masks (`*`, `?`),
    /// negated masks (`!mask`), `>n`/`<n` members, `C>n`/`C<n` minutes since creation and
    /// `T>n`/`T<n` minutes since the topic was set.
    pub fn parse(conditions: &str) -> Result<ListFilter, BadCondition> {
        let mut filter = ListFilter::default();
        for condition in conditions.split(',').filter(|c| !c.is_empty()) {
            let bad = || BadCondition(condition.to_string());
            let number = |s: &str| s.parse::<u64>().map_err(|_| bad());
            if let Some(mask) = condition.strip_prefix('!') {
                filter.not_masks.push(mask.to_string());
            } else if let Some(n) = condition.strip_prefix('>') {
                filter.more_than = Some(number(n)? as usize);
            } else if let Some(n) = condition.strip_prefix('<') {
                filter.fewer_than = Some(number(n)? as usize);
            } else if let Some(n) = condition.strip_prefix("C>").or_else(|| condition.strip_prefix("c>")) {
                filter.created_before = Some(number(n)?);
            } else if let Some(n) = condition.strip_prefix("C<").or_else(|| condition.strip_prefix("c<")) {
                filter.created_within = Some(number(n)?);
            } else if let Some(n) = condition.strip_prefix("T>").or_else(|| condition.strip_prefix("t>")) {
                filter.topic_before = Some(number(n)?);
            } else if let Some(n) = condition.strip_prefix("T<").or_else(|| condition.strip_prefix("t<")) {
                filter.topic_within = Some(number(n)?);
            } else if condition.contains(['*', '?']) {
                filter.masks.push(condition.to_string());
            } else if condition.starts_with('#') {
                filter.names.push(crate::chat::text::fold(condition));
            } else {
                return Err(bad());
            }
        }
        Ok(filter)
    }

    /// A filter on names only: `mask` if it has wildcards, the one room it names otherwise.
    pub fn mask(mask: &str) -> ListFilter {
        if mask.contains(['*', '?']) {
            ListFilter { masks: vec![mask.to_string()], ..ListFilter::default() }
        } else {
            ListFilter { names: vec![crate::chat::text::fold(mask)], ..ListFilter::default() }
        }
    }

    /// Whether a room with these properties is listed; `now` and the times in milliseconds.
    pub fn keeps(&self, name: &str, members: usize, created: u64, topic_at: Option<u64>, now: u64) -> bool {
        let minutes_ago = |at: u64| now.saturating_sub(at) / 60_000;
        (self.names.is_empty() || self.names.iter().any(|n| *n == crate::chat::text::fold(name)))
            && (self.masks.is_empty() || self.masks.iter().any(|m| wildcard_match(m, name)))
            && !self.not_masks.iter().any(|m| wildcard_match(m, name))
            && self.more_than.is_none_or(|n| members > n)
            && self.fewer_than.is_none_or(|n| members < n)
            && self.created_before.is_none_or(|n| minutes_ago(created) > n)
            && self.created_within.is_none_or(|n| minutes_ago(created) < n)
            && self.topic_before.is_none_or(|n| topic_at.is_some_and(|at| minutes_ago(at) > n))
            && self.topic_within.is_none_or(|n| topic_at.is_some_and(|at| minutes_ago(at) < n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_elist_conditions() {
        let filter = ListFilter::parse("#a*,!#ab*,>2,<10,C>5,T<60").unwrap();
        assert_eq!(filter.masks, ["#a*"]);
        assert_eq!(filter.not_masks, ["#ab*"]);
        assert_eq!((filter.more_than, filter.fewer_than), (Some(2), Some(10)));
        assert_eq!((filter.created_before, filter.topic_within), (Some(5), Some(60)));
        assert_eq!(ListFilter::parse("#Lobby,#x").unwrap().names, ["#lobby", "#x"]);
        assert!(ListFilter::parse(">many").is_err());
        assert!(ListFilter::parse("lobby").is_err());
    }

    #[test]
    fn keeps_what_every_condition_allows() {
        let now = 100 * 60_000;
        let filter = ListFilter::parse("#a*,!#ab*,>1").unwrap();
        assert!(filter.keeps("#apple", 2, 0, None, now));
        assert!(!filter.keeps("#apple", 1, 0, None, now), "not more than 1 member");
        assert!(!filter.keeps("#abc", 5, 0, None, now), "excluded by !#ab*");
        assert!(!filter.keeps("#pear", 5, 0, None, now), "not matching #a*");
        let topics = ListFilter::parse("T<10").unwrap();
        assert!(topics.keeps("#x", 1, 0, Some(now - 5 * 60_000), now));
        assert!(!topics.keeps("#x", 1, 0, Some(now - 50 * 60_000), now));
        assert!(!topics.keeps("#x", 1, 0, None, now), "no topic, no topic time");
        assert!(ListFilter::parse("C>60").unwrap().keeps("#x", 1, 0, None, now));
        assert!(!ListFilter::parse("C<60").unwrap().keeps("#x", 1, 0, None, now));
    }
}

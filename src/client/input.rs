//! The input line: text with a cursor, the usual editing keys, the history of sent lines, and
//! Tab completion that cycles through candidates the caller supplies.

/// Most lines kept in the input history.
const HISTORY_LEN: usize = 500;

/// The line being typed.
#[derive(Debug, Clone, Default)]
pub struct Input {
    chars: Vec<char>,
    /// Cursor position, in chars (0..=len).
    cursor: usize,
    /// Lines sent, oldest first.
    history: Vec<String>,
    /// Which history line is shown while browsing with ↑/↓; `None` when editing a new line.
    browsing: Option<usize>,
    /// What was typed before browsing began, restored by ↓ past the newest line.
    draft: String,
    completion: Option<Completion>,
}

/// A Tab completion in progress: pressing Tab again moves to the next candidate.
#[derive(Debug, Clone)]
struct Completion {
    /// Where the completed word starts, in chars.
    start: usize,
    candidates: Vec<String>,
    index: usize,
    /// What follows each candidate (`": "` for a nick at the start of the line, else `" "`).
    suffix: &'static str,
}

impl Input {
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// The cursor position in chars.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// Replaces the whole line, cursor at its end.
    pub fn set(&mut self, text: &str) {
        self.chars = text.chars().collect();
        self.cursor = self.chars.len();
        self.completion = None;
    }

    /// Inserts text at the cursor (a typed character or a paste).
    pub fn insert(&mut self, text: &str) {
        for c in text.chars() {
            self.chars.insert(self.cursor, c);
            self.cursor += 1;
        }
        self.edited();
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
        self.completion = None;
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
        self.completion = None;
    }

    pub fn home(&mut self) {
        self.cursor = 0;
        self.completion = None;
    }

    pub fn end(&mut self) {
        self.cursor = self.chars.len();
        self.completion = None;
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
        self.edited();
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
        self.edited();
    }

    /// Ctrl-W: deletes the word before the cursor and the spaces after it.
    pub fn delete_word(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.chars[start - 1] == ' ' {
            start -= 1;
        }
        while start > 0 && self.chars[start - 1] != ' ' {
            start -= 1;
        }
        self.chars.drain(start..self.cursor);
        self.cursor = start;
        self.edited();
    }

    /// Ctrl-U: deletes everything before the cursor.
    pub fn delete_to_start(&mut self) {
        self.chars.drain(..self.cursor);
        self.cursor = 0;
        self.edited();
    }

    /// Ctrl-K: deletes everything from the cursor on.
    pub fn delete_to_end(&mut self) {
        self.chars.truncate(self.cursor);
        self.edited();
    }

    /// Enter: takes the line, remembers it in the history and clears the input.
    pub fn submit(&mut self) -> String {
        let line = self.text();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_LEN {
                self.history.remove(0);
            }
        }
        self.chars.clear();
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        self.completion = None;
        line
    }

    /// ↑: the previous line of the history.
    pub fn history_up(&mut self) {
        let index = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(index);
        let line = self.history[index].clone();
        self.set(&line);
    }

    /// ↓: the next line of the history, then back to what was being typed.
    pub fn history_down(&mut self) {
        let Some(i) = self.browsing else {
            return;
        };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            let line = self.history[i + 1].clone();
            self.set(&line);
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.set(&draft);
        }
    }

    /// The word before the cursor that Tab would complete, with where it starts (in chars).
    pub fn word_before_cursor(&self) -> (usize, String) {
        let start = self.chars[..self.cursor].iter().rposition(|&c| c == ' ').map_or(0, |i| i + 1);
        (start, self.chars[start..self.cursor].iter().collect())
    }

    /// Whether a Tab completion is in progress (so the next Tab cycles instead of starting over).
    pub fn completing(&self) -> bool {
        self.completion.is_some()
    }

    /// Starts completing the word before the cursor with `candidates` (already filtered and
    /// ordered); false if there are none.
    pub fn start_completion(&mut self, candidates: Vec<String>, suffix: &'static str) -> bool {
        if candidates.is_empty() {
            return false;
        }
        let (start, _) = self.word_before_cursor();
        self.completion = Some(Completion { start, candidates, index: 0, suffix });
        self.apply_completion();
        true
    }

    /// Tab again: the next candidate, wrapping around.
    pub fn next_completion(&mut self) {
        if let Some(c) = &mut self.completion {
            c.index = (c.index + 1) % c.candidates.len();
        }
        self.apply_completion();
    }

    /// Puts the current candidate in place of the word being completed.
    fn apply_completion(&mut self) {
        let Some(c) = &self.completion else {
            return;
        };
        let replacement: Vec<char> = c.candidates[c.index].chars().chain(c.suffix.chars()).collect();
        let len = replacement.len();
        self.chars.splice(c.start..self.cursor, replacement);
        self.cursor = c.start + len;
    }

    fn edited(&mut self) {
        self.completion = None;
        self.browsing = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Input {
        let mut input = Input::default();
        input.insert(text);
        input
    }

    #[test]
    fn editing_keys() {
        let mut input = typed("hello world");
        input.home();
        input.delete();
        input.insert("J");
        assert_eq!(input.text(), "Jello world");
        input.end();
        input.left();
        input.backspace();
        assert_eq!(input.text(), "Jello word");
        assert_eq!(input.cursor(), 9);
        input.right();
        input.right();
        assert_eq!(input.cursor(), 10);
        input.delete_word();
        assert_eq!(input.text(), "Jello ");
        input.insert("wörld  ");
        input.delete_word();
        assert_eq!(input.text(), "Jello ");
        input.insert("there");
        input.left();
        input.left();
        input.delete_to_end();
        assert_eq!(input.text(), "Jello the");
        input.left();
        input.delete_to_start();
        assert_eq!(input.text(), "e");
        assert_eq!(input.cursor(), 0);
        input.backspace();
        assert_eq!(input.text(), "e");
    }

    #[test]
    fn history_browsing_keeps_the_draft() {
        let mut input = Input::default();
        for line in ["one", "two", "two", "  "] {
            input.set(line);
            input.submit();
        }
        input.insert("draft");
        input.history_up();
        assert_eq!(input.text(), "two");
        input.history_up();
        assert_eq!(input.text(), "one");
        input.history_up();
        assert_eq!(input.text(), "one");
        input.history_down();
        assert_eq!(input.text(), "two");
        input.history_down();
        assert_eq!(input.text(), "draft");
        input.history_down();
        assert_eq!(input.text(), "draft");
    }

    #[test]
    fn completion_cycles_and_ends_on_edit() {
        let mut input = typed("hi al");
        assert_eq!(input.word_before_cursor(), (3, "al".to_string()));
        assert!(input.start_completion(vec!["alice".into(), "alan".into()], " "));
        assert_eq!(input.text(), "hi alice ");
        assert!(input.completing());
        input.next_completion();
        assert_eq!(input.text(), "hi alan ");
        input.next_completion();
        assert_eq!(input.text(), "hi alice ");
        input.insert("x");
        assert!(!input.completing());
        assert!(!input.start_completion(Vec::new(), " "));
    }
}

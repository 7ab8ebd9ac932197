//! How many of faultline's own notes of each shape a connection has logged, so a note repeated
//! per frame (a stall's WINDOW_UPDATE credit for every dropped DATA frame: 94 lines in a second
//! in a gRPC trial) is logged a few times at info and then at debug. The capture keeps every one.

/// Notes by shape (the note without its digits: `WINDOW_UPDATE +16389 … stream 3` and `… +8192
/// … stream 5` are one shape), with how many were seen.
#[derive(Debug, Default)]
pub struct NoteShapes {
    seen: Vec<(String, u32)>,
}

/// Shapes remembered per connection: a bound on what a hostile peer can make it keep; past it
/// every note counts as new (logged, never lost).
const MAX_SHAPES: usize = 32;

impl NoteShapes {
    /// How many notes of the shape of `note` were seen before this one.
    pub fn seen(&mut self, note: &str) -> u32 {
        let shape: String = note.chars().filter(|c| !c.is_ascii_digit()).collect();
        if let Some((_, n)) = self.seen.iter_mut().find(|(s, _)| *s == shape) {
            *n = n.saturating_add(1);
            return *n - 1;
        }
        if self.seen.len() < MAX_SHAPES {
            self.seen.push((shape, 1));
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_differing_in_numbers_are_one_shape_and_shapes_are_bounded() {
        let mut shapes = NoteShapes::default();
        let credit =
            |n: u32| format!("WINDOW_UPDATE +{n} on the connection: credit for DATA of stream {n}");
        assert_eq!(
            (0..5)
                .map(|n| shapes.seen(&credit(n * 7 + 1)))
                .collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(shapes.seen("header block of stream 1 withheld"), 0);
        for i in 0..100 {
            shapes.seen(&"x".repeat(i + 1));
        }
        assert_eq!(shapes.seen.len(), MAX_SHAPES);
        assert_eq!(shapes.seen("a shape never seen, past the bound"), 0);
        assert_eq!(
            shapes.seen(&credit(99)),
            5,
            "a shape seen before is still counted"
        );
    }
}

//! The SETTINGS one peer advertised (RFC 9113 §6.5.2), as they constrain what the other peer may send.

/// SETTINGS_HEADER_TABLE_SIZE: how large the *other* peer's HPACK encoder may make this peer's table.
pub const HEADER_TABLE_SIZE: u16 = 0x1;
/// SETTINGS_ENABLE_PUSH.
pub const ENABLE_PUSH: u16 = 0x2;
/// SETTINGS_MAX_CONCURRENT_STREAMS.
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// SETTINGS_INITIAL_WINDOW_SIZE: initial stream window for DATA sent *to* this peer.
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
/// SETTINGS_MAX_FRAME_SIZE: largest frame payload the other peer may send to this peer.
pub const MAX_FRAME_SIZE: u16 = 0x5;
/// SETTINGS_MAX_HEADER_LIST_SIZE (advisory).
pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
/// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441).
pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
/// SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218).
pub const NO_RFC7540_PRIORITIES: u16 = 0x9;

/// What one peer advertised so far, starting from the RFC defaults. Values outside the RFC's
/// ranges are recorded in `invalid` and not applied: the receiving peer treats them as a
/// connection error, so the connection is about to end anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSettings {
    /// SETTINGS_HEADER_TABLE_SIZE (default 4096).
    pub header_table_size: u32,
    /// SETTINGS_ENABLE_PUSH (default true).
    pub enable_push: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS (default unlimited).
    pub max_concurrent_streams: Option<u32>,
    /// SETTINGS_INITIAL_WINDOW_SIZE (default 65 535).
    pub initial_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE (default 16 384).
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE (default unlimited).
    pub max_header_list_size: Option<u32>,
    /// SETTINGS frames this peer sent that the other peer has not acknowledged yet.
    pub unacknowledged: u32,
    /// (identifier, value) pairs rejected as out of range.
    pub invalid: Vec<(u16, u32)>,
}

impl Default for PeerSettings {
    fn default() -> PeerSettings {
        PeerSettings {
            header_table_size: 4096,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: 65_535,
            max_frame_size: 16_384,
            max_header_list_size: None,
            unacknowledged: 0,
            invalid: Vec::new(),
        }
    }
}

impl PeerSettings {
    /// Applies the values of one SETTINGS frame in order. Unknown identifiers are ignored
    /// (RFC 9113 §6.5.2). Returns the change of SETTINGS_INITIAL_WINDOW_SIZE, which shifts every
    /// open stream's window for DATA sent to this peer (RFC 9113 §6.9.2).
    pub fn apply(&mut self, values: &[(u16, u32)]) -> i64 {
        let before = i64::from(self.initial_window_size);
        for &(id, value) in values {
            match id {
                HEADER_TABLE_SIZE => self.header_table_size = value,
                ENABLE_PUSH if value <= 1 => self.enable_push = value == 1,
                MAX_CONCURRENT_STREAMS => self.max_concurrent_streams = Some(value),
                INITIAL_WINDOW_SIZE if value <= super::frame::MAX_WINDOW => {
                    self.initial_window_size = value
                }
                MAX_FRAME_SIZE
                    if (super::frame::DEFAULT_MAX_FRAME_SIZE
                        ..=super::frame::MAX_MAX_FRAME_SIZE)
                        .contains(&value) =>
                {
                    self.max_frame_size = value
                }
                MAX_HEADER_LIST_SIZE => self.max_header_list_size = Some(value),
                ENABLE_PUSH | INITIAL_WINDOW_SIZE | MAX_FRAME_SIZE => {
                    self.invalid.push((id, value))
                }
                _ => {}
            }
        }
        i64::from(self.initial_window_size) - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_apply_in_order_and_report_the_window_change() {
        let mut settings = PeerSettings::default();
        let delta = settings.apply(&[
            (INITIAL_WINDOW_SIZE, 1 << 20),
            (MAX_FRAME_SIZE, 1 << 20),
            (HEADER_TABLE_SIZE, 0),
            (ENABLE_PUSH, 0),
            (0xf0f0, 7),
        ]);
        assert_eq!(delta, (1 << 20) - 65_535);
        assert_eq!(settings.max_frame_size, 1 << 20);
        assert_eq!(settings.header_table_size, 0);
        assert!(!settings.enable_push);
    }

    #[test]
    fn out_of_range_values_are_kept_aside() {
        let mut settings = PeerSettings::default();
        settings.apply(&[
            (MAX_FRAME_SIZE, 100),
            (ENABLE_PUSH, 2),
            (INITIAL_WINDOW_SIZE, 1 << 31),
        ]);
        assert_eq!(settings.max_frame_size, 16_384);
        assert!(settings.enable_push);
        assert_eq!(settings.invalid.len(), 3);
    }
}

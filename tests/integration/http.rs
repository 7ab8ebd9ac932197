//! HTTP-aware faults, forward mode and the built-in store, through real sockets.

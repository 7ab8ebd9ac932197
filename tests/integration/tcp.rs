//! TCP pass-through and faults seen from real clients through a real proxy.

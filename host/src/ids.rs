//! Identifiers and secrets: request ids, key ids and key secrets.

use rand::RngExt as _;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// `len` random alphanumeric characters.
pub fn random_token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Base-62 digits in ASCII order, so fixed-width numbers written with them sort as
/// strings in the order of their values.
const SORTED62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new request id: `req_`, the time in milliseconds (8 base-62 digits), then 16
/// random characters (95 bits).
///
/// Ids made later sort after earlier ones, so the log tables' keys grow at their end:
/// the writer appends to a few hot pages instead of touching a random leaf of every
/// index per row, which was most of its disk traffic.
pub fn request_id() -> String {
    let mut s = String::with_capacity(28);
    s.push_str("req_");
    let mut ms = u64::try_from(now_ms()).unwrap_or(0);
    let mut digits = [b'0'; 8];
    for d in digits.iter_mut().rev() {
        *d = SORTED62[(ms % 62) as usize];
        ms /= 62;
    }
    s.extend(digits.iter().map(|&b| char::from(b)));
    s.push_str(&random_token(16));
    s
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch (span start times).
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_sort_by_time_and_stay_unique() {
        let a = super::request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::request_id();
        assert_eq!(a.len(), 28);
        assert!(a.starts_with("req_") && a[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(a < b, "{a} should sort before {b}");
        assert_ne!(super::request_id(), super::request_id());
    }
}

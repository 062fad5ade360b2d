//! Raw HTTP/1.1 for stand-in servers that must misbehave in ways a framework would not let
//! them: one request read off a connection.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The next request on `conn` (its head up to the blank line, then Content-Length bytes
/// of body), taken from the front of `buf`, which keeps what came after it. The head
/// lower-cased, or `None` when the connection ends first.
pub async fn read_request(
    conn: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Option<String> {
    read_request_with_body(conn, buf)
        .await
        .map(|(head, _)| head)
}

/// [`read_request`], with the request's body.
pub async fn read_request_with_body(
    conn: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap_or(0));
    while buf.len() < head_end + length {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Some((head, body))
}

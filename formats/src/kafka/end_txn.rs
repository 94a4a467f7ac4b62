//! Commits a transaction that another process began, as Flink's Kafka
//! sink does when it resumes one after a crash. librdkafka cannot: a
//! producer only ends its own transactions, and Kafka's KIP-939 is not in
//! librdkafka 2.12. So this sends the two requests it takes itself,
//! FindCoordinator (v1) and EndTxn (v1), with the producer id and epoch
//! the transaction's producer was given, which the checkpoint recorded.
//!
//! Plain-text connections only: with `security.protocol` other than
//! `plaintext`, the transaction cannot be resumed (and the sink says so).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::client::ProducerId;
use crate::{Error, Result};

const FIND_COORDINATOR: i16 = 10;
const END_TXN: i16 = 26;
/// FindCoordinator's key type of a transactional id.
const TRANSACTION_KEY: i8 = 1;
/// How long to wait before asking again when the coordinator is busy.
const RETRY_WAIT: Duration = Duration::from_millis(100);

/// Kafka's error codes that this reads.
mod code {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const PRODUCER_FENCED: i16 = 90;
}

/// Commits transaction `transactional_id` of producer `producer` through
/// the brokers at `servers` (`host:port`, comma-separated). Committing one
/// that is committed already changes nothing.
///
/// # Errors
/// When the transaction was aborted (it timed out, or another producer
/// took over its id), the brokers do not know it, or none answers within
/// `timeout`.
pub fn commit(
    servers: &str,
    transactional_id: &str,
    producer: ProducerId,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let failed = |why: String| Error::Kafka {
        message: format!("cannot commit transaction '{transactional_id}' of an earlier run: {why}"),
    };
    let mut last = String::from("no broker answered");
    while Instant::now() < deadline {
        for server in servers.split(',').map(str::trim) {
            let outcome = coordinator(server, transactional_id, deadline)
                .and_then(|coordinator| end(&coordinator, transactional_id, producer, deadline));
            match outcome {
                Ok(code::NONE) => return Ok(()),
                Ok(
                    code::COORDINATOR_LOAD_IN_PROGRESS
                    | code::COORDINATOR_NOT_AVAILABLE
                    | code::NOT_COORDINATOR
                    | code::CONCURRENT_TRANSACTIONS,
                ) => last = "the brokers are busy".to_string(),
                Ok(code::INVALID_PRODUCER_EPOCH | code::PRODUCER_FENCED) => {
                    return Err(failed(
                        "another producer took over its transactional id, and Kafka aborted it"
                            .to_string(),
                    ));
                }
                Ok(code::INVALID_TXN_STATE) => {
                    return Err(failed(
                        "Kafka aborted it (it stayed open longer than \
                         'properties.transaction.timeout.ms')"
                            .to_string(),
                    ));
                }
                Ok(code::INVALID_PRODUCER_ID_MAPPING) => {
                    return Err(failed(
                        "the brokers no longer know its producer (it expired)".to_string(),
                    ));
                }
                Ok(other) => return Err(failed(format!("Kafka error code {other}"))),
                Err(e) => last = e,
            }
        }
        std::thread::sleep(RETRY_WAIT);
    }
    Err(failed(format!("{last} within {timeout:?}")))
}

/// The `host:port` of the coordinator of `transactional_id`, as `server`
/// tells.
fn coordinator(
    server: &str,
    transactional_id: &str,
    deadline: Instant,
) -> std::result::Result<String, String> {
    let mut body = Vec::new();
    put_string(&mut body, transactional_id);
    body.push(TRANSACTION_KEY as u8);
    let response = call(server, FIND_COORDINATOR, &body, deadline)?;
    let mut reader = Reader(&response);
    let _throttle = reader.i32()?;
    let error = reader.i16()?;
    let _message = reader.nullable_string()?;
    let _node = reader.i32()?;
    let host = reader.nullable_string()?.unwrap_or_default();
    let port = reader.i32()?;
    if error != code::NONE {
        return Err(format!(
            "{server} cannot name the coordinator: error code {error}"
        ));
    }
    Ok(format!("{host}:{port}"))
}

/// Sends EndTxn (commit) to `coordinator`; returns its error code.
fn end(
    coordinator: &str,
    transactional_id: &str,
    producer: ProducerId,
    deadline: Instant,
) -> std::result::Result<i16, String> {
    let mut body = Vec::new();
    put_string(&mut body, transactional_id);
    body.extend_from_slice(&producer.id.to_be_bytes());
    body.extend_from_slice(&producer.epoch.to_be_bytes());
    body.push(1);
    let response = call(coordinator, END_TXN, &body, deadline)?;
    let mut reader = Reader(&response);
    let _throttle = reader.i32()?;
    reader.i16()
}

/// Sends request `api_key` (version 1) with `body` to `server` and
/// returns the response's body.
fn call(
    server: &str,
    api_key: i16,
    body: &[u8],
    deadline: Instant,
) -> std::result::Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("{server}: {e}");
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let address = std::net::ToSocketAddrs::to_socket_addrs(server)
        .map_err(io)?
        .next()
        .ok_or_else(|| format!("{server}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, left).map_err(io)?;
    stream.set_read_timeout(Some(left)).map_err(io)?;
    stream.set_write_timeout(Some(left)).map_err(io)?;
    let correlation = 1_i32;
    let mut request = Vec::new();
    request.extend_from_slice(&api_key.to_be_bytes());
    request.extend_from_slice(&1_i16.to_be_bytes());
    request.extend_from_slice(&correlation.to_be_bytes());
    put_string(&mut request, "weir");
    request.extend_from_slice(body);
    let mut framed = (request.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    stream.write_all(&framed).map_err(io)?;
    let mut size = [0; 4];
    stream.read_exact(&mut size).map_err(io)?;
    let size = i32::from_be_bytes(size);
    if !(4..=1 << 20).contains(&size) {
        return Err(format!("{server}: a response of {size} bytes"));
    }
    let mut response = vec![0; size as usize];
    stream.read_exact(&mut response).map_err(io)?;
    let mut reader = Reader(&response);
    if reader.i32()? != correlation {
        return Err(format!("{server}: the answer to another request"));
    }
    Ok(reader.0.to_vec())
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as i16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Reads a response's fields in order.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        if self.0.len() < N {
            return Err("a response cut short".to_string());
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }

    fn i16(&mut self) -> std::result::Result<i16, String> {
        self.take().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> std::result::Result<i32, String> {
        self.take().map(i32::from_be_bytes)
    }

    fn nullable_string(&mut self) -> std::result::Result<Option<String>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let len = len as usize;
        if self.0.len() < len {
            return Err("a response cut short".to_string());
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(Some(String::from_utf8_lossy(text).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_read_field_by_field() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&7_i32.to_be_bytes());
        bytes.extend_from_slice(&(-1_i16).to_be_bytes());
        put_string(&mut bytes, "host");
        let mut reader = Reader(&bytes);
        assert_eq!(reader.i32(), Ok(7));
        assert_eq!(reader.nullable_string(), Ok(None));
        assert_eq!(reader.nullable_string(), Ok(Some("host".to_string())));
        assert!(reader.i16().is_err(), "nothing is left");
    }
}

//! The embedded MQTT broker (rumqttd) for a single node without Mosquitto: started inside
//! Argus on a loopback address with one user, so feeds (and the demo's simulator) publish to
//! Argus directly. Its sessions live in memory: a restart of Argus loses what was queued for an
//! offline subscriber, which is why production runs on an external broker.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use argus_config::MqttSettings;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::MqttError;

/// How long the broker may take to listen.
const START_WITHIN: Duration = Duration::from_secs(10);

/// Start the broker of `settings` (`host:port`, its credentials as the one user) on threads of
/// its own, and return once it accepts connections. Payloads up to `max_payload_bytes` pass
/// (larger ones are refused by the broker). The broker lives as long as the process.
pub fn start_embedded(
    settings: &MqttSettings,
    max_payload_bytes: usize,
) -> Result<SocketAddr, MqttError> {
    let addr: SocketAddr = format!("{}:{}", settings.host, settings.port)
        .parse()
        .map_err(|e| {
            MqttError::Broker(format!(
                "{}:{} is not an address: {e}",
                settings.host, settings.port
            ))
        })?;
    // Refuse a port already taken, with a clear error, before the broker's threads try.
    std::net::TcpListener::bind(addr)
        .map_err(|e| MqttError::Broker(format!("cannot listen on {addr}: {e}")))?;
    let auth = settings
        .credentials
        .as_ref()
        .map(|c| HashMap::from([(c.username.clone(), c.password.clone())]));
    let server = ServerSettings {
        name: "argus".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: max_payload_bytes,
            max_inflight_count: usize::from(settings.max_inflight).max(100),
            auth,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 104_857_600,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("argus".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("argus-mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("embedded mqtt broker stopped: {e}");
            }
        })
        .map_err(|e| MqttError::Broker(format!("cannot start its thread: {e}")))?;
    let deadline = Instant::now() + START_WITHIN;
    loop {
        match probe(addr, settings) {
            Ok(0) => break,
            Ok(code) => {
                return Err(MqttError::Broker(format!(
                    "refused its own user (CONNACK return code {code})"
                )))
            }
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(MqttError::Broker(format!(
                    "not answering on {addr} after {} s: {e}",
                    START_WITHIN.as_secs()
                )))
            }
        }
    }
    tracing::info!(%addr, "embedded mqtt broker listening");
    Ok(addr)
}

/// Connect to the broker as a proper MQTT 3.1.1 client with the configured user, then
/// disconnect: the CONNACK's return code (0: accepted). Proves it listens and knows the user.
fn probe(addr: SocketAddr, settings: &MqttSettings) -> std::io::Result<u8> {
    use std::io::{Read, Write};
    fn string(out: &mut Vec<u8>, s: &str) {
        let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
    }
    let mut rest = Vec::new();
    string(&mut rest, "MQTT");
    rest.push(4); // protocol level 3.1.1
    let credentials = settings.credentials.as_ref();
    rest.push(if credentials.is_some() { 0xC2 } else { 0x02 }); // user, password, clean session
    rest.extend_from_slice(&10_u16.to_be_bytes()); // keep alive
    string(&mut rest, "argus-broker-probe");
    if let Some(c) = credentials {
        string(&mut rest, &c.username);
        string(&mut rest, &c.password);
    }
    let mut packet = vec![0x10];
    let mut len = rest.len();
    loop {
        let byte = u8::try_from(len % 128).unwrap_or(0);
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&rest);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(&packet)?;
    let mut connack = [0_u8; 4];
    stream.read_exact(&mut connack)?;
    if connack[0] != 0x20 {
        return Err(std::io::Error::other("no CONNACK"));
    }
    stream.write_all(&[0xE0, 0x00])?; // DISCONNECT
    Ok(connack[3])
}

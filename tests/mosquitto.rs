//! Round trip through the real Mosquitto of the local stack: authenticated QoS 1 publish and
//! subscribe, and refusal of anonymous and wrong-password clients.

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};

use crate::util::{client_id, runtime, settings, unique};

fn options(client_id: &str, credentials: Option<(&str, &str)>) -> MqttOptions {
    let s = settings();
    let mut options = MqttOptions::new(client_id, s.mqtt.host.clone(), s.mqtt.port);
    options.set_keep_alive(Duration::from_secs(10));
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    options
}

/// Poll a fresh client until its CONNACK arrives or the connection fails.
async fn connect_result(options: MqttOptions) -> Result<(), ConnectionError> {
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    loop {
        match eventloop.poll().await? {
            Event::Incoming(Packet::ConnAck(_)) => return Ok(()),
            _ => continue,
        }
    }
}

#[test]
fn authenticated_qos1_messages_arrive_complete_and_in_order() {
    const COUNT: usize = 500;
    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let credentials = s
            .mqtt
            .credentials
            .clone()
            .unwrap_or_else(|| panic!("config has no mqtt credentials"));
        let creds = Some((credentials.username.as_str(), credentials.password.as_str()));
        let topic = format!("argus-test/{}", unique("mqtt"));

        let (subscriber, mut sub_loop) = AsyncClient::new(options(&client_id("sub"), creds), 100);
        subscriber
            .subscribe(&topic, QoS::AtLeastOnce)
            .await
            .unwrap_or_else(|e| panic!("subscribe: {e}"));
        // Wait for the SUBACK so no message is published before the subscription exists.
        loop {
            match tokio::time::timeout(Duration::from_secs(10), sub_loop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => panic!("subscriber connection: {e}"),
                Err(_) => panic!("no SUBACK within 10 s"),
            }
        }

        let (publisher, mut pub_loop) = AsyncClient::new(options(&client_id("pub"), creds), 100);
        let pub_task = tokio::spawn(async move {
            let mut acked = 0;
            while acked < COUNT {
                match pub_loop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(e) => panic!("publisher connection: {e}"),
                }
            }
            acked
        });
        for i in 0..COUNT {
            let payload = format!("{{\"source\":\"MN{i:05}\",\"seq\":{i}}}");
            publisher
                .publish(&topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap_or_else(|e| panic!("publish: {e}"));
        }

        let mut received = Vec::with_capacity(COUNT);
        while received.len() < COUNT {
            match tokio::time::timeout(Duration::from_secs(20), sub_loop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    assert_eq!(p.topic, topic);
                    assert_eq!(p.qos, QoS::AtLeastOnce);
                    received.push(String::from_utf8_lossy(&p.payload).into_owned());
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("subscriber connection: {e}"),
                Err(_) => panic!(
                    "only {} of {COUNT} messages arrived within 20 s",
                    received.len()
                ),
            }
        }
        let acked = tokio::time::timeout(Duration::from_secs(20), pub_task).await;
        assert!(
            matches!(acked, Ok(Ok(n)) if n == COUNT),
            "publisher did not get {COUNT} PUBACKs"
        );
        let expected: Vec<String> = (0..COUNT)
            .map(|i| format!("{{\"source\":\"MN{i:05}\",\"seq\":{i}}}"))
            .collect();
        assert_eq!(received, expected, "messages lost, duplicated or reordered");
    });
}

#[test]
fn anonymous_and_wrong_password_clients_are_refused() {
    let rt = runtime();
    rt.block_on(async {
        let s = settings();
        let user = s
            .mqtt
            .credentials
            .map(|c| c.username)
            .unwrap_or_else(|| panic!("config has no mqtt credentials"));
        let anonymous = connect_result(options(&client_id("anon"), None)).await;
        assert!(
            matches!(
                anonymous,
                Err(ConnectionError::ConnectionRefused(
                    ConnectReturnCode::NotAuthorized
                ))
            ),
            "anonymous client was not refused: {anonymous:?}"
        );
        let wrong = connect_result(options(
            &client_id("wrong"),
            Some((&user, "not-the-password")),
        ))
        .await;
        assert!(
            matches!(
                wrong,
                Err(ConnectionError::ConnectionRefused(
                    ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
                ))
            ),
            "wrong password was not refused: {wrong:?}"
        );
    });
}

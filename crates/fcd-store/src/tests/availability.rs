//! PostgreSQL going away under a running store: requests fail with `Unavailable` (FC's 503),
//! nothing is half-written, and the store works again once the database is back.

use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::metadata::{func, svc};
use crate::{MetadataStore, PgStore, StoreError};

/// A TCP relay to the database that the test can cut (every connection and the listening
/// port) and restore on the same port.
struct Relay {
    port: u16,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: String, port: u16) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up, list) = (upstream.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let up = up.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(up.as_str()).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                list.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        Relay {
            port,
            upstream,
            tasks,
        }
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_and_recovers() {
    let Some(url) = super::pg_database().await else {
        return;
    };
    // postgres://user@host:port/db -> host:port, and the same URL through the relay.
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (host_port, db) = rest.split_once('/').unwrap();
    let relay = Relay::start(host_port.to_owned(), 0).await;
    let relayed = format!("{scheme_user}@127.0.0.1:{}/{db}", relay.port);
    let store = PgStore::connect(&relayed).await.unwrap();
    store.insert_service("acc", &svc("s")).await.unwrap();

    relay.cut();
    let r = store.insert_function("acc", "s", &func("f")).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let r = store.get_service("acc", "s").await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");

    // The database is back (on the same address): the store recovers, and the failed write
    // left nothing behind.
    let relay = Relay::start(relay.upstream.clone(), relay.port).await;
    assert!(store.get_service("acc", "s").await.unwrap().is_some());
    assert!(store.get_function("acc", "s", "f").await.unwrap().is_none());
    store.insert_function("acc", "s", &func("f")).await.unwrap();
    relay.cut();
    drop(store);
    super::drop_database(&url).await;
}

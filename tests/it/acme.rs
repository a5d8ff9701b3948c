//! Managed certificates (ACME) against a real ACME server: Debian's Pebble, started per test
//! on ports chosen at run time (`portico_tests::acme`).

use portico_tests::acme::{Pebble, PebbleOptions};
use portico_tests::free_addr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_starts_on_runtime_ports_and_hands_out_its_root() {
    let mut pebble = Pebble::start(PebbleOptions {
        http_port: free_addr().port(),
        validity_s: Some(3600),
    })
    .await;
    let root = pebble.root().await;
    let parsed = openssl::x509::X509::from_pem(root.as_bytes()).expect("a PEM certificate");
    let subject = format!("{:?}", parsed.subject_name());
    assert!(subject.contains("Pebble Root CA"), "{subject}");
    assert!(pebble.log().contains("certificate validity period of 3600 seconds"));
    // A new start is a new CA: tests fetch the root after every start.
    pebble.resume().await;
    assert_ne!(pebble.root().await, root);
    assert_eq!(pebble.orders(), 0);
}

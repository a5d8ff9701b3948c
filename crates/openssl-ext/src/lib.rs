//! The OpenSSL calls Portico's TLS listener needs that rust-openssl (0.10.82) does not bind:
//! the session ticket key callback (`SSL_CTX_set_tlsext_ticket_key_cb`), a session lifetime
//! (`SSL_CTX_set_timeout`), a connection's session id context (`SSL_set_session_id_context`)
//! and the SNI name of a ClientHello inside the client hello callback
//! (`SSL_client_hello_get0_ext`). Unsafe code (with `portico-alloc`, Portico's only): each block says why it holds.
//!
//! [`ResumingClient`]: a client that offers each connection the session of an earlier one
//! of its own (benchmarks of resumed handshakes), safe because the sessions it offers can only
//! come from its own context.
//!
//! Ticket keys: OpenSSL's default is one random key per `SSL_CTX`, made at start and never
//! rotated, so a ticket resumes only on the process that issued it. [`set_ticket_keys`]
//! hands encryption and decryption to a [`TicketKeys`] instead: the key that encrypts new
//! tickets, and every key still accepted, by name. The legacy `HMAC_CTX` form of the callback
//! is used (deprecated in OpenSSL 3.0, still built by default and by every distribution)
//! because openssl-sys binds what it needs (`HMAC_Init_ex`, `EVP_*Init_ex`); the `EVP_MAC`
//! form would need `OSSL_PARAM` arrays built by hand. The ticket format is OpenSSL's own either
//! way: AES-256-CBC, HMAC-SHA256, a 16-byte key name.

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslConnector, SslContext, SslContextBuilder, SslRef, SslSession};
use openssl_sys as ffi;
use std::ffi::{c_int, c_long, c_uchar, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// `SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB` of `ssl.h` (what the `SSL_CTX_set_tlsext_ticket_key_cb`
/// macro expands to); openssl-sys does not define it.
const SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB: c_int = 72;

/// `TLSEXT_TYPE_server_name` of `tls1.h`.
const TLSEXT_TYPE_SERVER_NAME: c_uint = 0;

/// AES-256-CBC's IV length (`EVP_MAX_IV_LENGTH`, the size of the `iv` buffer OpenSSL passes).
const IV_BYTES: usize = 16;

#[allow(unsafe_code)]
unsafe extern "C" {
    // Real functions of libssl (not macros), in every OpenSSL since 0.9.8; openssl-sys links
    // libssl but declares neither.
    fn SSL_set_session_id_context(
        ssl: *mut ffi::SSL,
        sid_ctx: *const c_uchar,
        len: c_uint,
    ) -> c_int;
    fn SSL_CTX_set_timeout(ctx: *mut ffi::SSL_CTX, t: c_long) -> c_long;
}

/// One ticket key's material.
#[derive(Clone)]
pub struct KeyMaterial {
    /// Sent in the clear in each ticket: how the key is found again.
    pub name: [u8; 16],
    /// AES-256-CBC key.
    pub aes_key: [u8; 32],
    /// HMAC-SHA256 key.
    pub hmac_key: [u8; 32],
}

/// Where a listener's ticket keys come from. Called inside handshakes: must not block.
pub trait TicketKeys: Send + Sync + 'static {
    /// The key to encrypt a new ticket with (`None`: issue no ticket).
    fn encrypting(&self) -> Option<KeyMaterial>;
    /// The key named `name`, if a ticket made with it is still accepted, and whether the
    /// client should get a new ticket (the key no longer encrypts).
    fn decrypting(&self, name: &[u8; 16]) -> Option<(KeyMaterial, bool)>;
}

/// The `SSL_CTX` ex-data slot holding the listener's [`TicketKeys`].
fn keys_index() -> Result<Index<SslContext, Arc<dyn TicketKeys>>, ErrorStack> {
    static INDEX: OnceLock<Index<SslContext, Arc<dyn TicketKeys>>> = OnceLock::new();
    if let Some(index) = INDEX.get() {
        return Ok(*index);
    }
    let index = SslContext::new_ex_index()?;
    // Two threads racing here each made a slot: the loser's stays unused.
    Ok(*INDEX.get_or_init(|| index))
}

/// Makes the context's tickets encrypted and decrypted with `keys`, and tickets (and cached
/// sessions) resumable for `lifetime_secs` (also the lifetime hint clients are sent).
pub fn set_ticket_keys(
    builder: &mut SslContextBuilder,
    keys: Arc<dyn TicketKeys>,
    lifetime_secs: u32,
) -> Result<(), ErrorStack> {
    builder.set_ex_data(keys_index()?, keys);
    type Callback = unsafe extern "C" fn(
        *mut ffi::SSL,
        *mut c_uchar,
        *mut c_uchar,
        *mut ffi::EVP_CIPHER_CTX,
        *mut ffi::HMAC_CTX,
        c_int,
    ) -> c_int;
    let callback: Callback = ticket_key_callback;
    #[allow(unsafe_code)]
    // SAFETY: `SSL_CTX_callback_ctrl` takes every callback as `void (*)(void)` and casts it
    // back by `cmd`; for SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB it is called with exactly
    // `Callback`'s signature (ssl/t1_lib.c). The context pointer is the builder's own.
    let set = unsafe {
        let generic = std::mem::transmute::<Callback, unsafe extern "C" fn()>(callback);
        ffi::SSL_CTX_callback_ctrl__fixed_rust(
            builder.as_ptr(),
            SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB,
            Some(generic),
        )
    };
    if set != 1 {
        return Err(ErrorStack::get());
    }
    #[allow(unsafe_code)]
    // SAFETY: a plain setter on the builder's own context.
    unsafe {
        SSL_CTX_set_timeout(builder.as_ptr(), c_long::from(lifetime_secs));
    }
    Ok(())
}

/// OpenSSL's ticket key callback: `enc` 1 to encrypt a new ticket (fill `key_name` and `iv`,
/// set the cipher and HMAC up; 1 done, 0 no ticket), 0 to decrypt one (`key_name` and `iv`
/// read from it; 1 done, 2 done and issue a new ticket, 0 key unknown: a full handshake);
/// negative on error.
#[allow(unsafe_code)]
unsafe extern "C" fn ticket_key_callback(
    ssl: *mut ffi::SSL,
    key_name: *mut c_uchar,
    iv: *mut c_uchar,
    cipher: *mut ffi::EVP_CIPHER_CTX,
    hmac: *mut ffi::HMAC_CTX,
    enc: c_int,
) -> c_int {
    // A panic must not unwind into C: it would abort the process. Refuse the ticket instead
    // (0: no new ticket, or a full handshake for the one offered); -1 would fail the handshake.
    std::panic::catch_unwind(|| {
        // SAFETY: OpenSSL calls this with the connection in handshake, a 16-byte `key_name`,
        // an `iv` of EVP_MAX_IV_LENGTH (16) bytes and live cipher and HMAC contexts
        // (ssl/t1_lib.c tls_decrypt_ticket, ssl/statem/statem_srvr.c construct_stateless_ticket),
        // none used elsewhere during the call.
        unsafe { ticket_key(ssl, key_name, iv, cipher, hmac, enc) }
    })
    .unwrap_or(0)
}

#[allow(unsafe_code)]
unsafe fn ticket_key(
    ssl: *mut ffi::SSL,
    key_name: *mut c_uchar,
    iv: *mut c_uchar,
    cipher: *mut ffi::EVP_CIPHER_CTX,
    hmac: *mut ffi::HMAC_CTX,
    enc: c_int,
) -> c_int {
    let Ok(index) = keys_index() else {
        return -1;
    };
    // SAFETY: `ssl` is the live connection OpenSSL handed the callback (see the caller).
    let ssl = unsafe { SslRef::from_ptr(ssl) };
    let Some(keys) = ssl.ssl_context().ex_data(index) else {
        return 0;
    };
    // SAFETY: both buffers are OpenSSL's, of these sizes, for the length of the call.
    let (name, iv) = unsafe {
        (
            &mut *key_name.cast::<[u8; 16]>(),
            &mut *iv.cast::<[u8; IV_BYTES]>(),
        )
    };
    let (key, done) = if enc == 1 {
        let Some(key) = keys.encrypting() else {
            return 0;
        };
        if openssl::rand::rand_bytes(iv).is_err() {
            return -1;
        }
        *name = key.name;
        (key, 1)
    } else {
        match keys.decrypting(name) {
            Some((key, renew)) => (key, if renew { 2 } else { 1 }),
            None => return 0,
        }
    };
    // SAFETY: the contexts are OpenSSL's, live for the call; the keys are 32 bytes as
    // AES-256 and the HMAC length say, the IV 16 as AES-CBC needs.
    let ready = unsafe {
        let aes = ffi::EVP_aes_256_cbc();
        let cipher_ready = if enc == 1 {
            ffi::EVP_EncryptInit_ex(
                cipher,
                aes,
                std::ptr::null_mut(),
                key.aes_key.as_ptr(),
                iv.as_ptr(),
            )
        } else {
            ffi::EVP_DecryptInit_ex(
                cipher,
                aes,
                std::ptr::null_mut(),
                key.aes_key.as_ptr(),
                iv.as_ptr(),
            )
        };
        cipher_ready == 1
            && ffi::HMAC_Init_ex(
                hmac,
                key.hmac_key.as_ptr().cast::<c_void>(),
                32,
                ffi::EVP_sha256(),
                std::ptr::null_mut(),
            ) == 1
    };
    if ready { done } else { -1 }
}

/// Sets the session id context of one connection: a session (or ticket) made under another
/// context is not resumed on it (a full handshake instead). Call it from the client hello
/// callback, before OpenSSL looks the session up. At most 32 bytes.
pub fn set_session_id_context(ssl: &mut SslRef, context: &[u8]) -> Result<(), ErrorStack> {
    let len = c_uint::try_from(context.len()).unwrap_or(c_uint::MAX);
    #[allow(unsafe_code)]
    // SAFETY: OpenSSL copies `len` bytes of `context` (refusing more than 32) into the
    // connection, which `ssl` borrows mutably.
    let set = unsafe { SSL_set_session_id_context(ssl.as_ptr(), context.as_ptr(), len) };
    if set == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// The `host_name` of the ClientHello's SNI extension, inside the client hello callback
/// (where `SslRef::servername` does not know it yet).
pub fn client_hello_server_name(ssl: &SslRef) -> Option<String> {
    let mut data: *const c_uchar = std::ptr::null();
    let mut len: usize = 0;
    #[allow(unsafe_code)]
    // SAFETY: inside the client hello callback OpenSSL points `data` at the extension's
    // bytes, kept until the handshake moves on; they are copied out before returning.
    let ext = unsafe {
        let found = ffi::SSL_client_hello_get0_ext(
            ssl.as_ptr(),
            TLSEXT_TYPE_SERVER_NAME,
            &mut data,
            &mut len,
        );
        if found != 1 || data.is_null() {
            return None;
        }
        std::slice::from_raw_parts(data, len)
    };
    host_name(ext)
}

/// The first `host_name` of a `server_name` extension's body (RFC 6066 §3).
fn host_name(ext: &[u8]) -> Option<String> {
    let (list_len, mut list) = ext.split_first_chunk::<2>()?;
    if usize::from(u16::from_be_bytes(*list_len)) != list.len() {
        return None;
    }
    while let Some((&kind, rest)) = list.split_first() {
        let (len, rest) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        let name = rest.get(..len)?;
        if kind == 0 {
            return std::str::from_utf8(name).ok().map(str::to_string);
        }
        list = &rest[len..];
    }
    None
}

/// A TLS client whose connections can offer the session of an earlier connection of its own
/// (TLS resumption by session ID or ticket).
///
/// rust-openssl's `SslRef::set_session` is unsafe because the session must come from the
/// same context as the connection; here a [`ClientSession`] is only made from a connection of
/// this client's context and only offered by the client that made it.
pub struct ResumingClient {
    connector: SslConnector,
    id: u64,
}

/// A session one connection of a [`ResumingClient`] established.
#[derive(Clone)]
pub struct ClientSession {
    session: SslSession,
    client: u64,
}

impl ResumingClient {
    /// A client connecting with `connector`'s settings.
    pub fn new(connector: SslConnector) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ResumingClient {
            connector,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A connection to `host` (SNI; its certificate name checked when `verify_hostname`)
    /// offering `session` when it is one of this client's.
    pub fn ssl(
        &self,
        host: &str,
        verify_hostname: bool,
        session: Option<&ClientSession>,
    ) -> Result<Ssl, ErrorStack> {
        let mut config = self.connector.configure()?;
        config.set_verify_hostname(verify_hostname);
        let mut ssl = config.into_ssl(host)?;
        if let Some(s) = session.filter(|s| s.client == self.id) {
            #[allow(unsafe_code)]
            // SAFETY: the session came from a connection of `self.connector`'s context (see
            // `session`), the condition rust-openssl's `set_session` states.
            unsafe {
                ssl.set_session(&s.session)?;
            }
        }
        Ok(ssl)
    }

    /// The session of `ssl` after its handshake, if `ssl` is a connection of this client. Send
    /// close_notify (shut the stream down) before dropping the connection: OpenSSL marks the
    /// session of a connection dropped without it not resumable.
    pub fn session(&self, ssl: &SslRef) -> Option<ClientSession> {
        if ssl.ssl_context().as_ptr() != self.connector.context().as_ptr() {
            return None;
        }
        Some(ClientSession {
            session: ssl.session()?.to_owned(),
            client: self.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ssl::{
        SslAcceptor, SslConnector, SslMethod, SslStream, SslVerifyMode, SslVersion,
    };
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// Keys as a test sets them: one encrypts, all decrypt.
    struct Fixed {
        keys: Vec<KeyMaterial>,
    }

    impl TicketKeys for Fixed {
        fn encrypting(&self) -> Option<KeyMaterial> {
            self.keys.first().cloned()
        }
        fn decrypting(&self, name: &[u8; 16]) -> Option<(KeyMaterial, bool)> {
            let i = self.keys.iter().position(|k| &k.name == name)?;
            Some((self.keys[i].clone(), i > 0))
        }
    }

    fn key(tag: u8) -> KeyMaterial {
        KeyMaterial {
            name: [tag; 16],
            aes_key: [tag; 32],
            hmac_key: [tag.wrapping_add(1); 32],
        }
    }

    /// A server context (a node) with a self-signed certificate and `keys`.
    fn server(keys: Vec<KeyMaterial>) -> SslContext {
        server_with(Arc::new(Fixed { keys }))
    }

    /// A server context with a self-signed certificate and its ticket keys from `keys`.
    fn server_with(keys: Arc<dyn TicketKeys>) -> SslContext {
        let pkey = openssl::pkey::PKey::ec_gen("prime256v1").expect("key");
        let mut name = openssl::x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "t").expect("cn");
        let name = name.build();
        let mut cert = openssl::x509::X509::builder().expect("builder");
        cert.set_subject_name(&name).expect("subject");
        cert.set_issuer_name(&name).expect("issuer");
        cert.set_pubkey(&pkey).expect("pubkey");
        cert.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("t"))
            .expect("not before");
        cert.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).expect("t"))
            .expect("not after");
        cert.sign(&pkey, openssl::hash::MessageDigest::sha256())
            .expect("sign");
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        b.set_certificate(&cert.build()).expect("cert");
        b.set_private_key(&pkey).expect("pkey");
        set_ticket_keys(&mut b, keys, 7200).expect("ticket keys");
        b.build().into_context()
    }

    /// A client of TLS `version` only.
    fn client(version: SslVersion) -> ResumingClient {
        let mut c = SslConnector::builder(SslMethod::tls()).expect("connector");
        c.set_verify(SslVerifyMode::NONE);
        c.set_min_proto_version(Some(version)).expect("min");
        c.set_max_proto_version(Some(version)).expect("max");
        ResumingClient::new(c.build())
    }

    /// One connection of `client` to `server` offering `session`: whether it was resumed,
    /// and the session (with the ticket the server sent) to offer next time.
    fn connect(
        server: &SslContext,
        client: &ResumingClient,
        session: Option<&ClientSession>,
    ) -> (bool, ClientSession) {
        let (a, b) = UnixStream::pair().expect("pair");
        let ctx = server.clone();
        let accept = std::thread::spawn(move || {
            let ssl = openssl::ssl::Ssl::new(&ctx).expect("ssl");
            let mut s = SslStream::new(ssl, a).expect("stream");
            s.accept().expect("accept");
            let mut byte = [0];
            s.read_exact(&mut byte).expect("read");
            s.write_all(b"y").expect("write");
        });
        let ssl = client.ssl("t", false, session).expect("ssl");
        let mut s = SslStream::new(ssl, b).expect("stream");
        s.connect().expect("connect");
        s.write_all(b"x").expect("write");
        let mut byte = [0];
        s.read_exact(&mut byte).expect("read");
        // A client connection dropped without close_notify marks its session not resumable.
        let _ = s.shutdown();
        accept.join().expect("server");
        let reused = s.ssl().session_reused();
        (reused, client.session(s.ssl()).expect("session"))
    }

    #[test]
    fn tickets_resume_on_any_context_with_the_same_keys_and_not_on_others() {
        for version in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
            let c = client(version);
            let a = server(vec![key(1)]);
            let b = server(vec![key(1)]);
            let other = server(vec![key(2)]);
            let (reused, session) = connect(&a, &c, None);
            assert!(!reused);
            assert!(connect(&b, &c, Some(&session)).0, "{version:?}");
            assert!(!connect(&other, &c, Some(&session)).0, "{version:?}");
            // Another client does not offer this client's session.
            assert!(!connect(&b, &client(version), Some(&session)).0);
            // After a rotation elsewhere (key 3 encrypts, 1 still decrypts) it resumes, and
            // the new ticket is made with key 3: it resumes where only key 3 is known.
            let rotated = server(vec![key(3), key(1)]);
            let (reused, renewed) = connect(&rotated, &c, Some(&session));
            assert!(reused, "{version:?}");
            assert!(connect(&server(vec![key(3)]), &c, Some(&renewed)).0);
        }
    }

    /// A key source that panics whenever it is asked.
    struct Panics;

    impl TicketKeys for Panics {
        fn encrypting(&self) -> Option<KeyMaterial> {
            panic!("encrypting")
        }
        fn decrypting(&self, _: &[u8; 16]) -> Option<(KeyMaterial, bool)> {
            panic!("decrypting")
        }
    }

    #[test]
    fn a_panicking_key_source_costs_the_ticket_not_the_handshake() {
        for version in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
            let c = client(version);
            let (_, session) = connect(&server(vec![key(1)]), &c, None);
            // The ticket offered is not decrypted (a full handshake) and no new one is made,
            // but the connection is served.
            let (reused, _) = connect(&server_with(Arc::new(Panics)), &c, Some(&session));
            assert!(!reused, "{version:?}");
        }
    }

    /// Keys of a node that has none that encrypts: counts the tickets it is asked to open.
    #[derive(Default)]
    struct NoneEncrypts {
        decrypts: AtomicU64,
    }

    impl TicketKeys for NoneEncrypts {
        fn encrypting(&self) -> Option<KeyMaterial> {
            None
        }
        fn decrypting(&self, _: &[u8; 16]) -> Option<(KeyMaterial, bool)> {
            self.decrypts.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    #[test]
    fn without_a_key_that_encrypts_no_ticket_is_issued_and_the_handshake_completes() {
        for version in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
            let c = client(version);
            let keys = Arc::new(NoneEncrypts::default());
            let node = server_with(keys.clone());
            let (_, session) = connect(&node, &c, None);
            // The session comes back without a ticket: none for the node to open.
            connect(&node, &c, Some(&session));
            assert_eq!(keys.decrypts.load(Ordering::Relaxed), 0, "{version:?}");
        }
    }

    #[test]
    fn host_name_reads_the_first_host_name_and_refuses_bad_lengths() {
        let ext = b"\x00\x0e\x00\x00\x0bexample.com";
        assert_eq!(host_name(ext).as_deref(), Some("example.com"));
        // Another name type first, then a host name.
        let ext = b"\x00\x14\x01\x00\x03abc\x00\x00\x0bexample.com";
        assert_eq!(host_name(ext).as_deref(), Some("example.com"));
        assert_eq!(host_name(b"\x00\x0f\x00\x00\x0bexample.com"), None);
        assert_eq!(host_name(b"\x00\x0e\x00\x00\x0cexample.com"), None);
        assert_eq!(host_name(b"\x00"), None);
        assert_eq!(host_name(b""), None);
    }
}

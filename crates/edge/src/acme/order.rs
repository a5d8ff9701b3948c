//! One ACME order with `instant-acme` (RFC 8555): the account (created once, its credentials
//! kept in the state directory), a new order for the certificate's hosts, each pending
//! authorization's HTTP-01 challenge published for the proxy to answer, the order polled
//! until ready, a fresh key and CSR (ECDSA P-256, by `rcgen` inside `instant-acme`), and the
//! chain downloaded.

use super::Acme;
use super::files;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use portico_core::acme::Failure;
use portico_core::config::AcmeConfig;
use std::path::Path;
use std::time::Duration;

/// How long an order may take, from the first request to the chain, before it is given up
/// (and counted as a CA that did not answer).
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why an order failed: its kind for the backoff, and what `/status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderError {
    /// Unreachable or refused.
    pub kind: Failure,
    /// What happened.
    pub message: String,
}

impl OrderError {
    fn from_acme(during: &str, e: instant_acme::Error) -> Self {
        let kind = match &e {
            instant_acme::Error::Api(_) => Failure::Refused,
            instant_acme::Error::Http(_)
            | instant_acme::Error::Hyper(_)
            | instant_acme::Error::Other(_)
            | instant_acme::Error::Timeout(_) => Failure::Unreachable,
            _ => Failure::Refused,
        };
        OrderError {
            kind,
            message: format!("{during}: {e}"),
        }
    }

    fn refused(message: String) -> Self {
        OrderError {
            kind: Failure::Refused,
            message,
        }
    }
}

/// The PEM chain and key an order ends with.
#[derive(Debug)]
pub struct Issued {
    /// Leaf first, then intermediates.
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
}

/// The account for `acme.directory`: from its credentials in the state directory, else
/// created at the CA (terms of service agreed) and its credentials written there.
pub async fn account(acme: &AcmeConfig, state_dir: &Path) -> Result<Account, OrderError> {
    let builder = match &acme.ca_file {
        Some(ca) => Account::builder_with_root(ca),
        None => Account::builder(),
    }
    .map_err(|e| OrderError::from_acme("HTTP client", e))?;
    let path = files::account_file(state_dir, &acme.directory);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(credentials) = serde_json::from_str::<AccountCredentials>(&text) {
            return builder
                .from_credentials(credentials)
                .await
                .map_err(|e| OrderError::from_acme("account", e));
        }
        log::warn!(
            "ACME: {} holds no account credentials; creating a new account",
            path.display()
        );
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.directory.clone(),
            None,
        )
        .await
        .map_err(|e| OrderError::from_acme("new account", e))?;
    let text = serde_json::to_vec_pretty(&credentials)
        .map_err(|e| OrderError::refused(format!("account credentials: {e}")))?;
    if let Err(e) = files::write_private(&path, &text) {
        // The account works; only the next start will make another one.
        log::warn!("ACME: {e}");
    }
    log::info!(
        "ACME: account {} created at {}",
        account.id(),
        acme.directory
    );
    Ok(account)
}

/// Orders a certificate for `hosts` with `account`, answering its HTTP-01 challenges
/// through `acme` (any node's plain listener serving the same tokens would do).
pub async fn order(acme: &Acme, account: &Account, hosts: &[String]) -> Result<Issued, OrderError> {
    let identifiers: Vec<Identifier> = hosts.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| OrderError::from_acme("new order", e))?;
    let mut tokens = Vec::new();
    let outcome = async {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| OrderError::from_acme("authorization", e))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(OrderError::refused(format!(
                        "authorization of {} is {other:?}",
                        authz.identifier()
                    )));
                }
            }
            let name = authz.identifier().to_string();
            let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                OrderError::refused(format!("the CA offers no HTTP-01 challenge for {name}"))
            })?;
            acme.publish_challenge(&challenge.token, challenge.key_authorization().as_str());
            tokens.push(challenge.token.clone());
            challenge
                .set_ready()
                .await
                .map_err(|e| OrderError::from_acme(&format!("challenge of {name}"), e))?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(60));
        let status = order
            .poll_ready(&retry)
            .await
            .map_err(|e| OrderError::from_acme("waiting for validation", e))?;
        if status != OrderStatus::Ready {
            let detail = order
                .state()
                .error
                .as_ref()
                .map(|p| format!(": {p}"))
                .unwrap_or_default();
            return Err(OrderError::refused(format!(
                "the order is {status:?}, not ready{detail}"
            )));
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| OrderError::from_acme("finalize", e))?;
        let chain_pem = order
            .poll_certificate(&retry)
            .await
            .map_err(|e| OrderError::from_acme("certificate", e))?;
        Ok(Issued { chain_pem, key_pem })
    }
    .await;
    for t in &tokens {
        acme.withdraw(t);
    }
    outcome
}

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
use portico_store::{Store, StoreError};
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

/// Where the account and the certificates are kept: the state directory (a node with a
/// config file) or the store (nodes following one).
pub enum Keeper<'a> {
    /// `node.state_dir`.
    Dir(&'a Path),
    /// The store's ACME document.
    Store(&'a Store),
}

fn unreachable_store(e: StoreError) -> OrderError {
    OrderError {
        kind: Failure::Unreachable,
        message: format!("store: {e}"),
    }
}

/// The account for `acme.directory`: from its credentials where `keeper` keeps them, else
/// created at the CA (terms of service agreed) and its credentials kept there.
pub async fn account(acme: &AcmeConfig, keeper: &Keeper<'_>) -> Result<Account, OrderError> {
    let builder = || {
        match &acme.ca_file {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        }
        .map_err(|e| OrderError::from_acme("HTTP client", e))
    };
    let kept: Option<serde_json::Value> = match keeper {
        Keeper::Dir(dir) => std::fs::read_to_string(files::account_file(dir, &acme.directory))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok()),
        Keeper::Store(store) => store
            .get_acme()
            .await
            .map_err(unreachable_store)?
            .0
            .accounts
            .remove(&acme.directory),
    };
    if let Some(kept) = kept {
        match serde_json::from_value::<AccountCredentials>(kept) {
            Ok(credentials) => {
                return builder()?
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| OrderError::from_acme("account", e));
            }
            Err(e) => {
                log::warn!("ACME: unreadable account credentials ({e}); creating a new account")
            }
        }
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
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
    let value = serde_json::to_value(&credentials)
        .map_err(|e| OrderError::refused(format!("account credentials: {e}")))?;
    // The account works even if it is not kept; only the next order makes another one.
    match keeper {
        Keeper::Dir(dir) => {
            let path = files::account_file(dir, &acme.directory);
            if let Err(e) = files::write_private(&path, value.to_string().as_bytes()) {
                log::warn!("ACME: {e}");
            }
        }
        Keeper::Store(store) => {
            let directory = acme.directory.clone();
            let kept = store
                .update_acme(|doc| {
                    doc.accounts.insert(directory.clone(), value.clone());
                })
                .await;
            if let Err(e) = kept {
                log::warn!("ACME: account not kept in the store: {e}");
            }
        }
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
pub async fn order(
    acme: &Acme,
    account: &Account,
    hosts: &[String],
    store: Option<&Store>,
) -> Result<Issued, OrderError> {
    let identifiers: Vec<Identifier> = hosts.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| OrderError::from_acme("new order", e))?;
    let mut published = Published {
        acme,
        store: store.cloned(),
        tokens: Vec::new(),
    };
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
            let (token, answer) = (
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_string(),
            );
            acme.publish_challenge(&token, &answer);
            published.tokens.push(token.clone());
            if let Some(store) = store {
                // Any node may get the CA's request: every node answers from the store.
                store
                    .update_acme(|doc| {
                        doc.challenges.insert(token.clone(), answer.clone());
                    })
                    .await
                    .map_err(unreachable_store)?;
            }
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
    published.withdraw().await;
    outcome
}

/// The challenge answers an order published, withdrawn when it ends: by [`Published::withdraw`]
/// when it runs to its end, and on drop when it does not (the order's timeout drops it
/// mid-flight): then this node's answers go at once and the store's in a task of their own,
/// so that no answer outlives its order.
struct Published<'a> {
    acme: &'a Acme,
    store: Option<Store>,
    tokens: Vec<String>,
}

impl Published<'_> {
    /// Withdraws the answers here and from the store.
    async fn withdraw(&mut self) {
        let tokens = std::mem::take(&mut self.tokens);
        for t in &tokens {
            self.acme.withdraw(t);
        }
        if let Some(store) = self.store.as_ref().filter(|_| !tokens.is_empty()) {
            withdraw_stored(store, &tokens).await;
        }
    }
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        let tokens = std::mem::take(&mut self.tokens);
        for t in &tokens {
            self.acme.withdraw(t);
        }
        if let (Some(store), false) = (self.store.take(), tokens.is_empty())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { withdraw_stored(&store, &tokens).await });
        }
    }
}

async fn withdraw_stored(store: &Store, tokens: &[String]) {
    let withdrawn = store
        .update_acme(|doc| {
            for t in tokens {
                doc.challenges.remove(t);
            }
        })
        .await;
    if let Err(e) = withdrawn {
        log::warn!("ACME: challenges left in the store: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    const PATH: &str = "/.well-known/acme-challenge/tok";

    #[tokio::test]
    async fn answers_of_an_order_cut_short_by_its_timeout_are_withdrawn() {
        let acme = Acme::new(&Metrics::new("r", "v"));
        // An order that publishes its answer and then waits on a CA that never answers, cut
        // short as `ORDER_TIMEOUT` cuts it (the future dropped mid-flight).
        let stuck = async {
            let mut published = Published {
                acme: &acme,
                store: None,
                tokens: Vec::new(),
            };
            acme.publish_challenge("tok", "tok.thumb");
            published.tokens.push("tok".into());
            assert_eq!(acme.challenge_answer(PATH).as_deref(), Some("tok.thumb"));
            std::future::pending::<()>().await;
            published.withdraw().await;
        };
        let cut = tokio::time::timeout(Duration::from_millis(1), stuck).await;
        assert!(cut.is_err());
        assert_eq!(acme.challenge_answer(PATH), None);
        // An order that ends withdraws them too.
        let mut published = Published {
            acme: &acme,
            store: None,
            tokens: vec!["tok".into()],
        };
        acme.publish_challenge("tok", "tok.thumb");
        published.withdraw().await;
        assert_eq!(acme.challenge_answer(PATH), None);
    }
}

//! The converter's own WSB subscription at REST: at start, as STAR (organisation type 5 and
//! `wsb_subscriber_code`), for every entity, to the receiver's URL. If it exists already, it
//! is kept (a restart does not subscribe twice), and one for all replicas. Until REST
//! answers, it is retried every 5 s in the background; after that it is checked every minute
//! and made again if it went.

use std::time::Duration;

use serde_json::{Value, json};

use crate::vos;

/// Where and as whom the converter subscribes.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// REST's base URL (`http://127.0.0.1:8090`).
    pub rest_url: String,
    /// The converter's receiver (`https://converter.example/wsb`).
    pub receiver_url: String,
    /// STAR's organisation code the converter acts as.
    pub code: String,
    /// Dev mode: end this code's other subscriptions to a loopback `/wsb` (an earlier run
    /// of the converter on another port), whose deliveries could never arrive.
    pub prune_loopback: bool,
}

fn is_stale_loopback(endpoint: &str, receiver: &str) -> bool {
    endpoint != receiver
        && endpoint.ends_with("/wsb")
        && ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| endpoint.starts_with(p))
}

const ENTITETER: [&str; 3] = ["Kontaktgruppe", "Personkategori", "CprSkift"];

impl Subscription {
    fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
    ) -> reqwest::RequestBuilder {
        client
            .request(
                method,
                format!(
                    "{}{}/wsb/abonnementer",
                    self.rest_url.trim_end_matches('/'),
                    vos::BASE
                ),
            )
            .header(vos::HDR_ORG_TYPE, "5")
            .header(vos::HDR_ORG_CODE, &self.code)
            .header(vos::HDR_USER, "vos-converter")
            .timeout(Duration::from_secs(10))
    }

    /// The caller's subscriptions (GetWsbAbonnementer).
    async fn list(&self, client: &reqwest::Client) -> Result<Value, String> {
        self.request(client, reqwest::Method::GET)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("GetWsbAbonnementer: {e}"))?
            .json()
            .await
            .map_err(|e| format!("GetWsbAbonnementer: {e}"))
    }

    /// Ends subscription `id` (DeleteWsbAbonnement); answers REST's status.
    async fn end(&self, client: &reqwest::Client, id: &str) -> Result<reqwest::StatusCode, String> {
        let url = format!(
            "{}{}/wsb/abonnementer/{id}",
            self.rest_url.trim_end_matches('/'),
            vos::BASE
        );
        client
            .delete(url)
            .header(vos::HDR_ORG_TYPE, "5")
            .header(vos::HDR_ORG_CODE, &self.code)
            .header(vos::HDR_USER, "vos-converter")
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| format!("DeleteWsbAbonnement {id}: {e}"))
    }

    /// Makes sure the subscription exists, and exists once; answers its id.
    pub async fn ensure(&self, client: &reqwest::Client) -> Result<String, String> {
        let list = self.list(client).await?;
        if self.prune_loopback {
            for a in list["abonnementer"].as_array().into_iter().flatten() {
                let (Some(id), Some(endpoint)) = (a["id"].as_str(), a["endpoint"].as_str()) else {
                    continue;
                };
                if is_stale_loopback(endpoint, &self.receiver_url)
                    && self.end(client, id).await.is_ok_and(|s| s.is_success())
                {
                    tracing::info!(abonnement = %id, "ended the WSB subscription of an earlier dev run");
                }
            }
        }
        let ours = self.ours(&list);
        if !ours.is_empty() {
            return self.keep_one(client, ours).await;
        }
        let created: Value = self
            .request(client, reqwest::Method::POST)
            .json(&json!({ "endpoint": self.receiver_url, "entiteter": ENTITETER }))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("CreateWsbAbonnement: {e}"))?
            .json()
            .await
            .map_err(|e| format!("CreateWsbAbonnement: {e}"))?;
        let created = created["id"].as_str().unwrap_or_default().to_owned();
        // Replicas started together may each have found none and made one: every event
        // would then come once per subscription, and one acknowledged in between would be
        // queued again. Each keeps the least id it sees and ends the others: the least id
        // ever made is never ended, and whoever made a greater one sees it, so one is left.
        let list = self.list(client).await?;
        match self.ours(&list) {
            ours if ours.is_empty() => Ok(created),
            ours => self.keep_one(client, ours).await,
        }
    }

    /// Ends every subscription in `ours` (least id first) but the first; answers its id.
    async fn keep_one(
        &self,
        client: &reqwest::Client,
        ours: Vec<String>,
    ) -> Result<String, String> {
        let kept = ours[0].clone();
        for id in &ours[1..] {
            match self.end(client, id).await? {
                // 404: another replica ended it first.
                s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => {
                    tracing::info!(abonnement = %id, kept = %kept, "ended a second WSB subscription to this receiver (replicas started together)");
                }
                s => return Err(format!("DeleteWsbAbonnement {id}: {s}")),
            }
        }
        Ok(kept)
    }

    /// The ids of the subscriptions to this receiver for every entity, least first.
    fn ours(&self, list: &Value) -> Vec<String> {
        let mut ids: Vec<String> = list["abonnementer"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| {
                a["endpoint"] == self.receiver_url.as_str()
                    && ENTITETER.iter().all(|e| {
                        a["entiteter"]
                            .as_array()
                            .is_some_and(|l| l.iter().any(|x| x == e))
                    })
            })
            .filter_map(|a| a["id"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    /// Keeps the subscription in place for as long as the process runs: [`Subscription::ensure`]
    /// every `every` (every 5 s while REST does not answer), so that a subscription deleted
    /// at REST (or lost with a restored database) is made again without a restart, and
    /// says so: the changes in between did not reach the queues. `known`: the id the start
    /// found, if it found one.
    pub async fn keep(mut self, client: reqwest::Client, known: Option<String>, every: Duration) {
        // Other runs' loopback subscriptions are ended once, at the start, not again.
        self.prune_loopback = false;
        let mut known = known;
        loop {
            if known.is_some() {
                tokio::time::sleep(every).await;
            }
            match self.ensure(&client).await {
                Ok(id) => {
                    match &known {
                        None => {
                            tracing::info!(abonnement = %id, receiver = %self.receiver_url, "WSB subscription for the WSRM queues in place")
                        }
                        Some(k) if *k != id => {
                            tracing::warn!(abonnement = %id, was = %k, receiver = %self.receiver_url, "WSB subscription for the WSRM queues was gone (or another was kept) and is in place again: changes made while it was gone did not reach the WSRM queues")
                        }
                        Some(_) => {}
                    }
                    known = Some(id);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "WSB subscription not checked (REST does not answer); retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }
}

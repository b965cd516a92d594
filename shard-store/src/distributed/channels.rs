//! [`ClusterChannels`]: how the coordinator and the workers reach one another's
//! datafusion-distributed service: Shoal's endpoint settings, TLS, and the cluster token on
//! every request (the worker's interceptor refuses calls without it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion_distributed::grpc::{create_worker_client, BoxCloneSyncChannel};
use datafusion_distributed::{ChannelResolver, WorkerChannel};
use http::HeaderValue;
use url::Url;

use crate::client::{endpoint, KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT};
use crate::error::{Result, ShardStoreError};
use crate::tls::ClusterTls;

/// Channels to the nodes of one cluster, one per URL, connected lazily and reused.
#[derive(Clone)]
pub struct ClusterChannels {
    authorization: Option<HeaderValue>,
    tls: Option<ClusterTls>,
    channels: Arc<Mutex<HashMap<Url, BoxCloneSyncChannel>>>,
}

impl ClusterChannels {
    pub fn new(token: Option<&str>, tls: Option<ClusterTls>) -> Result<Self> {
        let authorization = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .map_err(|_| ShardStoreError::Config {
                message: "the cluster token must be printable ASCII".into(),
            })?;
        Ok(ClusterChannels {
            authorization,
            tls,
            channels: Arc::default(),
        })
    }

    /// The URL of the worker at `addr` (`host:port`) as these channels reach it.
    pub fn url_of(&self, addr: &str) -> Result<Url> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Url::parse(&format!("{scheme}://{addr}")).map_err(|e| ShardStoreError::Config {
            message: format!("invalid worker address {addr:?}: {e}"),
        })
    }

    fn channel(&self, url: &Url) -> Result<BoxCloneSyncChannel> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(url) {
            return Ok(c.clone());
        }
        let host_port = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            _ => {
                return Err(ShardStoreError::Config {
                    message: format!("worker URL {url} has no host and port"),
                })
            }
        };
        let inner = endpoint(
            &host_port,
            self.tls.as_ref(),
            KEEP_ALIVE_INTERVAL,
            KEEP_ALIVE_TIMEOUT,
        )?
        .connect_lazy();
        let authorization = self.authorization.clone();
        let with_token = tower::ServiceBuilder::new()
            .map_request(move |mut req: http::Request<tonic::body::Body>| {
                if let Some(v) = &authorization {
                    req.headers_mut()
                        .insert(http::header::AUTHORIZATION, v.clone());
                }
                req
            })
            .service(inner);
        let channel = BoxCloneSyncChannel::new(with_token);
        channels.insert(url.clone(), channel.clone());
        Ok(channel)
    }
}

#[async_trait]
impl ChannelResolver for ClusterChannels {
    async fn get_worker_client_for_url(
        &self,
        url: &Url,
    ) -> std::result::Result<Box<dyn WorkerChannel>, DataFusionError> {
        let channel = self
            .channel(url)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(create_worker_client(channel))
    }
}

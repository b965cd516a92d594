//! [`ClusterChannels`]: how the coordinator and the workers reach one another's
//! datafusion-distributed service: Shoal's endpoint settings, TLS, and the cluster token on
//! every request (the worker's interceptor refuses calls without it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::common::Result as DfResult;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_distributed::grpc::{create_worker_client, BoxCloneSyncChannel};
use datafusion_distributed::{
    ChannelResolver, CoordinatorToWorkerMsg, ExecuteTaskRequest, GetWorkerInfoRequest,
    GetWorkerInfoResponse, SetPlanRequest, WorkerChannel, WorkerToCoordinatorMsg,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue};
use url::Url;

use crate::client::{bearer_value, endpoint, KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT};
use crate::error::{Result, ShardStoreError};
use crate::tls::ClusterTls;

/// Called with the rows and bytes of every batch a task stream delivers to this process.
pub type ReceivedCounter = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// Channels to the nodes of one cluster, one per URL, connected lazily and reused.
#[derive(Clone)]
pub struct ClusterChannels {
    authorization: Option<HeaderValue>,
    tls: Option<ClusterTls>,
    channels: Arc<Mutex<HashMap<Url, BoxCloneSyncChannel>>>,
    received: Option<ReceivedCounter>,
    /// HTTP/2 pings: a node that does not answer one within `ping_timeout` fails its calls.
    ping_interval: Duration,
    ping_timeout: Duration,
}

impl ClusterChannels {
    pub fn new(token: Option<&str>, tls: Option<ClusterTls>) -> Result<Self> {
        // the same header, checked the same way, as a Flight client presents
        let authorization = bearer_value(token.map(str::to_string))?
            .map(|v| HeaderValue::from_bytes(v.as_encoded_bytes()))
            .transpose()
            .map_err(|_| ShardStoreError::Config {
                message: "the cluster token must be printable ASCII".into(),
            })?;
        Ok(ClusterChannels {
            authorization,
            tls,
            channels: Arc::default(),
            received: None,
            ping_interval: KEEP_ALIVE_INTERVAL,
            ping_timeout: KEEP_ALIVE_TIMEOUT,
        })
    }

    /// Pings every `ping_interval`; a node that does not answer within `ping_timeout` (a
    /// stopped or partitioned worker) fails the query's calls to it instead of hanging them.
    pub fn with_liveness(mut self, ping_interval: Duration, ping_timeout: Duration) -> Self {
        self.ping_interval = ping_interval;
        self.ping_timeout = ping_timeout;
        self
    }

    /// Counts what this process receives from the tasks it reads (the coordinator's rows
    /// received).
    pub fn with_received_counter(mut self, counter: ReceivedCounter) -> Self {
        self.received = Some(counter);
        self
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
        let host_port = match (url.host_str(), url.port_or_known_default()) {
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
            self.ping_interval,
            self.ping_timeout,
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
        let client = create_worker_client(channel);
        Ok(match &self.received {
            Some(counter) => Box::new(CountingChannel {
                inner: client,
                counter: Arc::clone(counter),
            }),
            None => client,
        })
    }
}

/// A worker channel that counts the batches of the task streams it opens.
struct CountingChannel {
    inner: Box<dyn WorkerChannel>,
    counter: ReceivedCounter,
}

#[async_trait]
impl WorkerChannel for CountingChannel {
    async fn coordinator_channel(
        &mut self,
        headers: HeaderMap,
        set_plan_request: SetPlanRequest,
        c2w_stream: BoxStream<'static, CoordinatorToWorkerMsg>,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> DfResult<BoxStream<'static, DfResult<WorkerToCoordinatorMsg>>> {
        self.inner
            .coordinator_channel(headers, set_plan_request, c2w_stream, metrics, task_ctx)
            .await
    }

    async fn execute_task(
        &mut self,
        headers: HeaderMap,
        request: ExecuteTaskRequest,
        metrics: ExecutionPlanMetricsSet,
        task_ctx: &Arc<TaskContext>,
    ) -> DfResult<Vec<BoxStream<'static, DfResult<RecordBatch>>>> {
        let streams = self
            .inner
            .execute_task(headers, request, metrics, task_ctx)
            .await?;
        Ok(streams
            .into_iter()
            .map(|s| {
                let counter = Arc::clone(&self.counter);
                s.inspect_ok(move |b| counter(b.num_rows(), b.get_array_memory_size()))
                    .boxed()
            })
            .collect())
    }

    async fn get_worker_info(
        &mut self,
        request: GetWorkerInfoRequest,
    ) -> DfResult<GetWorkerInfoResponse> {
        self.inner.get_worker_info(request).await
    }
}

//! Runs a [`Mesh`] on loopback: one scripted app ([`Upstream`]) per server pod, one real Envoy
//! per injected pod (separate processes, dynamic base ids, port-0 listeners), all reporting to
//! one collector. Servers start first so their inbound listeners' bound ports (read from the
//! admin API) become the endpoints of the clients' clusters. Dropping the [`MeshLab`] stops
//! every Envoy and app it started, also when a test fails.

use crate::{
    client::{Client, Reply},
    envoy::Envoy,
    lab::{
        model::{Mesh, Service, Workload},
        pki::Pki,
        render::{self, Endpoints, INBOUND_LISTENER, PodInput},
    },
    paths,
    upstream::Upstream,
};
use anyhow::{Context, Result, bail};
use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU32, Ordering},
};

/// The next pod IP number, process-wide so concurrent labs never share a pod IP.
static NEXT_POD_IP: AtomicU32 = AtomicU32::new(0);

/// One running pod.
#[derive(Debug)]
pub struct Pod {
    /// Pod name (node metadata NAME).
    pub name: String,
    pub namespace: String,
    pub workload: String,
    /// Replica index within its workload.
    pub index: usize,
    /// Runs an old config generation.
    pub stale: bool,
    /// Pod IP (a loopback address of its own; pods without a sidecar are reached at their app).
    pub ip: String,
    /// The app, for pods that serve a Service.
    pub app: Option<Upstream>,
    /// The sidecar, for injected pods.
    pub envoy: Option<Envoy>,
}

impl Pod {
    /// The sidecar, or an error for a pod without one.
    pub fn sidecar(&self) -> Result<&Envoy> {
        self.envoy
            .as_ref()
            .with_context(|| format!("pod {} has no sidecar", self.name))
    }

    /// A client that sends to this pod's outbound listener for `port`, as the app would after
    /// iptables redirected it.
    pub fn outbound(&self, port: u16) -> Result<Client> {
        let addr = self
            .sidecar()?
            .listener(&render::outbound_listener_name(port))?;
        Ok(Client::new(addr))
    }

    /// The app sends `GET path` to `service` through its sidecar.
    pub async fn call(&self, service: &Service, path: &str, request_id: &str) -> Result<Reply> {
        self.outbound(service.port)?
            .get(&service.authority(), path, request_id)
            .await
    }

    /// The app sends `GET path` with Host `authority` (any host, e.g. one the mesh does not
    /// know) through its port-80 outbound listener.
    pub async fn call_host(&self, authority: &str, path: &str, request_id: &str) -> Result<Reply> {
        self.outbound(80)?.get(authority, path, request_id).await
    }

    /// The sidecar's inbound listener (where other sidecars' mTLS connections arrive).
    pub fn inbound(&self) -> Result<SocketAddr> {
        self.sidecar()?.listener(INBOUND_LISTENER)
    }
}

/// A running mesh.
#[derive(Debug)]
pub struct MeshLab {
    /// The mesh as istiod knows it (latest generation).
    pub mesh: Mesh,
    /// Where every filter ships its batches.
    pub collector: SocketAddr,
    pods: Vec<Pod>,
    _pki: Pki,
}

impl MeshLab {
    /// Starts every pod of `mesh`, reporting to the collector at `collector`.
    pub async fn start(mesh: Mesh, collector: SocketAddr) -> Result<Self> {
        let pki = Pki::new()?;
        let wasm = paths::filter_wasm()?.display().to_string();
        let mut endpoints = Endpoints::default();
        let mut pods = Vec::new();

        // Apps first: a server pod's sidecar needs its app's address, a pod without a sidecar
        // is reached at its app directly.
        let mut server_sidecars = Vec::new();
        let mut client_sidecars = Vec::new();
        for workload in &mesh.workloads {
            let server = mesh.is_server(workload);
            for index in 0..workload.replicas {
                let name = workload.pod_name(index);
                let app = if server {
                    Some(Upstream::start().await?)
                } else {
                    None
                };
                if let (false, Some(app)) = (workload.injected, &app) {
                    endpoints.insert(&name, app.addr);
                }
                if workload.injected {
                    if server {
                        server_sidecars.push(pods.len());
                    } else {
                        client_sidecars.push(pods.len());
                    }
                }
                pods.push(Pod {
                    ip: crate::lab::model::pod_ip(NEXT_POD_IP.fetch_add(1, Ordering::Relaxed)),
                    name,
                    namespace: workload.namespace.clone(),
                    workload: workload.name.clone(),
                    index,
                    stale: workload.is_stale(index),
                    app,
                    envoy: None,
                });
            }
        }

        // Server sidecars, then client sidecars with every endpoint known.
        for batch in [server_sidecars, client_sidecars] {
            let mut starting = Vec::new();
            for &i in &batch {
                let pod = &pods[i];
                let workload = find_workload(&mesh, &pod.workload)?;
                let generation = if pod.stale { 1 } else { mesh.generation() };
                let view = mesh.view(generation);
                let config = render::bootstrap(&PodInput {
                    view: &view,
                    workload,
                    pod: &pod.name,
                    ip: &pod.ip,
                    app: pod.app.as_ref().map(|app| app.addr),
                    endpoints: &endpoints,
                    pki: &pki,
                    collector,
                    wasm: &wasm,
                })?;
                let name = pod.name.clone();
                starting.push((
                    i,
                    tokio::spawn(async move { Envoy::start(&name, &config).await }),
                ));
            }
            for (i, task) in starting {
                let envoy = task
                    .await
                    .context("an Envoy start task panicked")?
                    .with_context(|| format!("start the sidecar of pod {}", pods[i].name))?;
                if let Ok(inbound) = envoy.listener(INBOUND_LISTENER) {
                    endpoints.insert(&pods[i].name, inbound);
                }
                pods[i].envoy = Some(envoy);
            }
        }
        Ok(Self {
            mesh,
            collector,
            pods,
            _pki: pki,
        })
    }

    /// Replica `index` of `workload`.
    pub fn pod(&self, workload: &str, index: usize) -> Result<&Pod> {
        self.pods
            .iter()
            .find(|p| p.workload == workload && p.index == index)
            .with_context(|| format!("no pod {index} of workload {workload}"))
    }

    /// Every replica of `workload`.
    pub fn pods_of<'a>(&'a self, workload: &'a str) -> impl Iterator<Item = &'a Pod> {
        self.pods.iter().filter(move |p| p.workload == workload)
    }

    /// Every pod.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The Service called `name`.
    pub fn service(&self, name: &str) -> Result<&Service> {
        self.mesh
            .find_service(name)
            .with_context(|| format!("no service {name} in the mesh"))
    }

    /// The collector's gRPC URL.
    pub fn collector_url(&self) -> String {
        format!("http://{}", self.collector)
    }

    /// Fails with the sidecars' error lines when one of them has exited.
    pub fn check_running(&mut self) -> Result<()> {
        for pod in &mut self.pods {
            if let Some(envoy) = &mut pod.envoy
                && !envoy.is_running()
            {
                bail!(
                    "the sidecar of {} exited:\n{}",
                    pod.name,
                    crate::envoy::tail(&envoy.log, 30)
                );
            }
        }
        Ok(())
    }
}

fn find_workload<'a>(mesh: &'a Mesh, name: &str) -> Result<&'a Workload> {
    mesh.workloads
        .iter()
        .find(|w| w.name == name)
        .with_context(|| format!("no workload {name}"))
}

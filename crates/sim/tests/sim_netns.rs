//! Network mode: the anycast service address routed by BIRD over BGP between the namespaces (the deploy/anycast recipe on every edge node), withdrawn by a node's health check or by BFD, re-announced when the node returns; the store's members in the router namespaces, a region down and back; everything cleaned up. Runs only as root where `ip netns add` works, BIRD is installed and the binaries are built, and says so plainly when skipped.

mod common;

use common::*;
use portico_sim::bird::{self, Routing};
use portico_sim::launch::alive;
use portico_sim::netns::Netns;
use portico_sim::{Launch, SimOptions, Simulation, Topology, netns};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn launch() -> Option<(Launch, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_portico-sim"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let Some(launch) = Launch::in_dir(&dir) else {
        eprintln!(
            "SKIPPED: no portico and portico-origin binaries in {}",
            dir.display()
        );
        return None;
    };
    if !netns::available() {
        eprintln!("SKIPPED: network mode needs root and a working `ip netns add`");
        return None;
    }
    if let Err(e) = bird::tools() {
        eprintln!("SKIPPED: {e}");
        return None;
    }
    Some((launch, dir))
}

/// `birdc -s SOCKET COMMAND…`, the CLI an operator would use; its output.
fn birdc(routing: &Routing, socket: &Path, command: &str) -> String {
    let out = Command::new(&routing.tools.birdc)
        .arg("-s")
        .arg(socket)
        .args(command.split_whitespace())
        .output()
        .expect("birdc runs");
    assert!(out.status.success(), "birdc {command}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The AS each route of a `show route … all` answer ends at (the node it leads to).
fn origins(routes: &str) -> Vec<u32> {
    routes
        .lines()
        .filter_map(|l| l.trim().strip_prefix("BGP.as_path:"))
        .filter_map(|p| p.split_whitespace().last()?.parse().ok())
        .collect()
}

/// Whether router `r`'s kernel route to the service address was installed by BIRD and leads
/// (through the routers' kernels) to edge node `j`.
fn routed_by_bgp(net: &Netns, r: usize, j: usize) -> bool {
    net.kernel_route(r).is_some_and(|k| k.proto == "bird") && net.routed_to(r) == Some(j)
}

/// SIGCONTs a SIGSTOPped process when dropped, so a failed assertion does not leave it frozen.
struct Thaw(u32);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// Processes whose command line mentions `dir` (the run's BIRDs and health checks do).
fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            (cmd.contains(&needle) && alive(pid)).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

#[test]
fn network_mode_routes_the_service_address_with_bgp_withdraws_it_and_cleans_up() {
    let Some((launch, dir)) = launch() else {
        return;
    };
    let t0 = Instant::now();
    let work = dir.join(format!("sim-netns-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let options = SimOptions {
        base_port: None,
        launch,
        work_dir: Some(work.clone()),
        netns: true,
        no_store: false,
        acme: false,
    };
    let mut sim =
        Simulation::start(Topology::parse(TOPOLOGY).expect("valid"), &options).expect("starts");
    eprintln!(
        "network mode: up and routed by BGP after {:?}",
        t0.elapsed()
    );
    let net = sim.netns.clone().expect("network mode");
    let routing = sim.routing.clone().expect("BIRD");
    let names: Vec<String> = net.routers.iter().chain(&net.nodes).cloned().collect();
    assert_eq!(names.len(), 6, "a router per region, a namespace per node");
    assert!(names.iter().all(|n| netns::leftovers().contains(n)));

    // BGP: each router's kernel route to the service address is BIRD's, to its own region's
    // node; its BIRD learned a route to every node (its own directly, the others through the
    // other routers), over sessions watched by BFD.
    for r in 0..3 {
        let k = net.kernel_route(r).expect("a route to the service address");
        assert_eq!(k.proto, "bird", "{}", k.line);
        assert_eq!(k.via, net.node_link(r).1, "{}", k.line);
        assert!(routed_by_bgp(&net, r, r));
        assert_eq!(routing.best(r), Some(r));
        let every: Vec<u32> = (0..3).map(bird::node_as).collect();
        let show = format!("show route all {}/32", netns::SERVICE);
        eventually(
            &format!("router {r}'s BIRD has a route to every node"),
            Duration::from_secs(10),
            || {
                let mut ends = origins(&birdc(&routing, &routing.router_socket(r), &show));
                ends.sort_unstable();
                ends == every
            },
        );
        eventually(
            &format!("router {r}: BFD up with its node and the two other routers"),
            Duration::from_secs(10),
            || {
                let bfd = birdc(&routing, &routing.router_socket(r), "show bfd sessions");
                bfd.lines().filter(|l| l.contains(" Up ")).count() == 3
            },
        );
        assert_eq!(sim.announced(r), Some(true));
    }
    for (i, want) in ["web-us", "web-eu", "web-ap"].iter().enumerate() {
        eventually(
            &format!("node {i} prefers {want}"),
            Duration::from_secs(20),
            || prefers(&sim, i) == vec![want.to_string()],
        );
    }
    for (r, want) in ["us-east", "eu-west", "ap-south"].iter().enumerate() {
        eventually(
            &format!("{want} clients served in {want}"),
            Duration::from_secs(10),
            || served_from(sim.entries[r]).as_deref() == Some(*want),
        );
        // Over TLS too: the entry forwards the service address's TLS port, the node
        // terminates it with the run's certificate (it names every entry address).
        assert_eq!(
            served_over_tls(&sim, sim.tls_entries[r]),
            Some(("HTTP/2".to_string(), want.to_string())),
            "{want} over TLS"
        );
    }
    // The store: each region's etcd member in its router namespace, on its router address.
    let url = sim.store_url().expect("a store").clone();
    for (r, pid) in sim.etcd_pids().into_iter().enumerate() {
        let pid = pid.expect("member runs");
        let ns = Command::new("ip")
            .args(["netns", "identify", &pid.to_string()])
            .output()
            .expect("ip netns identify");
        assert_eq!(String::from_utf8_lossy(&ns.stdout).trim(), net.routers[r]);
        assert_eq!(url.endpoints[r], format!("{}:2379", netns::home(r)));
    }
    let v0 = portico_core::config::fingerprint(&sim.config);
    for i in 0..3 {
        let s = sim.status(i).expect("/status");
        let own = sim.node_store_url(i).expect("a store");
        assert_eq!(s["config_source"], format!("etcd:{own}").as_str());
        assert_eq!(s["config_version"], v0.as_str());
    }

    // A machine that stops answering (edge-eu's BIRD frozen): BFD drops its session in
    // ~300 ms, well inside the 9 s hold time, and eu-west routes to us-east (40 ms away).
    let frozen = sim.bird_pid(1).expect("edge-eu's BIRD runs");
    let stopped = Instant::now();
    let thaw = Thaw(frozen);
    assert!(
        Command::new("kill")
            .args(["-STOP", &frozen.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    eventually(
        "BFD: eu-west routes the service address to edge-us",
        Duration::from_secs(5),
        || routing.best(1) == Some(0) && routed_by_bgp(&net, 1, 0),
    );
    let bfd_took = stopped.elapsed();
    let session = birdc(&routing, &routing.router_socket(1), "show protocols node1");
    assert!(session.contains("BFD session down"), "{session}");
    assert!(bfd_took < Duration::from_secs(3), "{bfd_took:?}: not BFD");
    eprintln!("network mode: a frozen BIRD dropped by BFD after {bfd_took:?}");
    drop(thaw);
    eventually(
        "edge-eu's session back: eu-west routes to edge-eu again",
        Duration::from_secs(20),
        || routed_by_bgp(&net, 1, 1),
    );

    // A region down (node with its BIRD and health check, origin, member) and back, a push
    // in between: ap-south is routed to eu-west (60 ms) meanwhile, then to its own node.
    let report = sim.region_down("ap-south").expect("down");
    for want in [
        "etcd member ap-south: SIGKILLed",
        "BIRD of edge-ap: SIGKILLed",
        "health check of edge-ap: SIGKILLed",
    ] {
        assert!(report.contains(want), "{report}");
    }
    eventually(
        "ap-south routes the service address to edge-eu",
        Duration::from_secs(10),
        || routed_by_bgp(&net, 2, 1),
    );
    let v1 = sim
        .push_config(&with_weight(&sim.config.clone(), "web-eu", 7))
        .expect("a quorum of two");
    eventually("us and eu run v1", Duration::from_secs(15), || {
        versions(&sim)[..2] == [Some(v1.clone()), Some(v1.clone())]
    });
    let report = sim.region_up("ap-south").expect("up");
    for want in [
        format!("runs config {v1} from the store"),
        "BIRD of edge-ap: started".to_string(),
        "anycast: announced by BIRD".to_string(),
    ] {
        assert!(report.contains(&want), "{report}");
    }
    assert!(routed_by_bgp(&net, 2, 2), "region-up waits for BGP");
    eventually(
        "ap-south clients served in ap-south again",
        Duration::from_secs(15),
        || served_from(sim.entries[2]).as_deref() == Some("ap-south"),
    );

    // A crash of edge-us's Portico (its BIRD lives on): its health check withdraws it, BGP
    // takes the route away from every router, us-east clients go to eu-west.
    let killed = Instant::now();
    sim.kill_node(0);
    eventually(
        "us-east routes the service address to eu-west",
        Duration::from_secs(15),
        || routed_by_bgp(&net, 0, 1),
    );
    let moved = killed.elapsed();
    assert_eq!(sim.announced(0), Some(false), "withdrawn by its own BIRD");
    eventually(
        "no router has a route to edge-us left",
        Duration::from_secs(5),
        || {
            (0..3).all(|r| {
                routing
                    .routes(r)
                    .is_ok_and(|t| !origins(&t).contains(&bird::node_as(0)))
            })
        },
    );
    let k = net.kernel_route(0).expect("a route");
    assert_eq!(
        Some(k.via),
        net.router_link(0, 1).map(|l| l.1),
        "{}",
        k.line
    );
    eventually(
        "us clients served in eu-west",
        Duration::from_secs(10),
        || served_from(sim.entries[0]).as_deref() == Some("eu-west"),
    );
    eprintln!("network mode: us-east rerouted by BGP {moved:?} after the kill");
    // It comes back: announced again by its BIRD, us-east routes to it.
    let report = sim.region_up("us-east").expect("edge-us starts again");
    assert!(report.contains("anycast: announced by BIRD"), "{report}");
    assert!(!report.contains("BIRD of edge-us: started"), "{report}");
    assert!(routed_by_bgp(&net, 0, 0));
    eventually(
        "us clients served in us-east again",
        Duration::from_secs(10),
        || served_from(sim.entries[0]).as_deref() == Some("us-east"),
    );

    let pids = sim.child_pids();
    assert!(pids.len() >= 3 + 3 + 3 + 3 + 3 + 3 + 3, "{pids:?}");
    drop((net, routing));
    sim.stop();
    let left = netns::leftovers();
    assert!(
        names.iter().all(|n| !left.contains(n)),
        "namespaces left: {left:?}"
    );
    assert!(pids.iter().all(|p| !alive(*p)), "children left");
    let stray = processes_in(&work);
    assert!(stray.is_empty(), "processes left: {stray:?}");
    eprintln!("network mode: the whole test took {:?}", t0.elapsed());
    let _ = std::fs::remove_dir_all(work);
}

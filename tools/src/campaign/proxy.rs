//! TCP proxies for peer traffic. Each node advertises its proxy's port as its bus port
//! (`--advertise-bus-port`), so every raft connection to node `i` goes through proxy `i`. The
//! proxy learns which node is calling from the first frame (a length-prefixed `PeerMessage`
//! naming its sender) and then forwards bytes both ways, unless the link is cut: then the
//! connection is closed and new ones are refused (a partition looks like a dead network, and
//! never corrupts a stream). A delay holds every chunk back before forwarding it.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::Message as _;
use rockraft_raftstore::proto::PeerMessage;

/// Which links are cut and how slow the others are; shared by all proxies.
#[derive(Default)]
pub struct Net {
    /// Cut links, (from node index, to node index).
    cut: Mutex<HashSet<(usize, usize)>>,
    delay_ms: Mutex<u64>,
    /// Raft node id → node index, filled in once the nodes are up.
    ids: Mutex<HashMap<u64, usize>>,
    stop: AtomicBool,
}

impl Net {
    pub fn set_ids(&self, ids: HashMap<u64, usize>) {
        *self.ids.lock().unwrap() = ids;
    }

    pub fn cut(&self, from: usize, to: usize) {
        self.cut.lock().unwrap().insert((from, to));
    }

    pub fn set_delay(&self, ms: u64) {
        *self.delay_ms.lock().unwrap() = ms;
    }

    /// Restores every link and removes the delay.
    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
        self.set_delay(0);
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut.lock().unwrap().contains(&(from, to))
    }

    fn delay(&self) -> u64 {
        *self.delay_ms.lock().unwrap()
    }
}

/// Starts the proxy in front of node `to`'s bus port; returns the port it listens on.
pub fn start(net: Arc<Net>, to: usize, target: SocketAddr) -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || loop {
        if net.stop.load(Ordering::Relaxed) {
            return;
        }
        match listener.accept() {
            Ok((s, _)) => {
                let net = net.clone();
                std::thread::spawn(move || {
                    let _ = serve(net, to, target, s);
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    });
    Ok(port)
}

fn serve(net: Arc<Net>, to: usize, target: SocketAddr, inbound: TcpStream) -> std::io::Result<()> {
    inbound.set_nonblocking(false)?;
    inbound.set_read_timeout(Some(Duration::from_secs(5)))?;
    // The first frame names the sender.
    let mut inbound = inbound;
    let mut len = [0u8; 4];
    inbound.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if n > 64 << 20 {
        return Ok(());
    }
    let mut first = vec![0u8; n];
    inbound.read_exact(&mut first)?;
    let from_id = PeerMessage::parse_from_bytes(&first)
        .map(|pm| pm.get_from().node_id)
        .unwrap_or(0);
    let Some(from) = net.ids.lock().unwrap().get(&from_id).copied() else {
        return Ok(());
    };
    if net.is_cut(from, to) {
        return Ok(());
    }
    let outbound = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
    outbound.set_nodelay(true)?;
    inbound.set_nodelay(true)?;
    let mut out_w = outbound.try_clone()?;
    out_w.write_all(&len)?;
    out_w.write_all(&first)?;
    // Replies (a snapshot's acknowledgement) go back unconditionally while the link lives.
    let back = {
        let mut r = outbound.try_clone()?;
        let mut w = inbound.try_clone()?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut r, &mut w);
            let _ = w.shutdown(Shutdown::Both);
        })
    };
    inbound.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if net.is_cut(from, to) || net.stop.load(Ordering::Relaxed) {
            break;
        }
        match inbound.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                let d = net.delay();
                if d > 0 {
                    std::thread::sleep(Duration::from_millis(d));
                }
                if net.is_cut(from, to) || out_w.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let _ = inbound.shutdown(Shutdown::Both);
    let _ = outbound.shutdown(Shutdown::Both);
    let _ = back.join();
    Ok(())
}

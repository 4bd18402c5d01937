//! Keeping the classifiers attached while interfaces come and go: a veth
//! re-created, a bond rebuilt, a descriptor shortage in between.

use aya::Ebpf;

use super::{Attachment, Presence, attach_links, presence};

/// The interfaces tlsmon was asked to watch and the links it holds on
/// each. Dropping it detaches them.
pub struct Watch {
    ifaces: Vec<Watched>,
}

struct Watched {
    name: String,
    /// The index the links were made for; `None` while it is gone.
    index: Option<u32>,
    attachment: Option<Attachment>,
    /// The last thing said about it, so that a state that lasts (out of
    /// descriptors, a re-attach that keeps failing) is said once.
    said: Option<String>,
}

impl Watch {
    /// Attaches to each interface of `names`, each once (`--iface X
    /// --iface X` attached twice and failed with "File exists").
    pub fn attach(ebpf: &mut Ebpf, names: &[String]) -> anyhow::Result<Self> {
        let mut ifaces: Vec<Watched> = Vec::with_capacity(names.len());
        for name in names {
            if ifaces.iter().any(|w| w.name == *name) {
                continue;
            }
            let attachment = attach_links(ebpf, name)?;
            ifaces.push(Watched {
                name: name.clone(),
                index: super::ifindex(name),
                attachment: Some(attachment),
                said: None,
            });
        }
        Ok(Self { ifaces })
    }

    /// The interfaces watched, in the order given, without repeats.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.ifaces.iter().map(|w| w.name.clone()).collect()
    }

    /// Looks at every interface once (the daemon calls it every second):
    /// one that came back with a new index is attached again. Returns
    /// what changed, one sentence each, for stderr.
    pub fn check(&mut self, ebpf: &mut Ebpf) -> Vec<String> {
        let mut notices = Vec::new();
        for w in &mut self.ifaces {
            let notice = match presence(&w.name) {
                Presence::Index(i) if w.index == Some(i) => None,
                // Says nothing about the interface: keep what is attached.
                Presence::Unknown(e) => Some(format!(
                    "cannot read the state of interface {} ({e}); keeping its attachment",
                    w.name
                )),
                Presence::Absent if w.index.is_none() => continue,
                Presence::Absent => {
                    // Its links went with the old device.
                    w.attachment = None;
                    w.index = None;
                    Some(format!(
                        "interface {} is gone; waiting for it to come back",
                        w.name
                    ))
                }
                Presence::Index(i) => {
                    w.attachment = None;
                    match attach_links(ebpf, &w.name) {
                        Ok(attachment) => {
                            w.attachment = Some(attachment);
                            w.index = Some(i);
                            Some(format!("re-attached to {}", w.name))
                        }
                        // Retried on the next call.
                        Err(e) => Some(format!("re-attaching to {}: {e:#}", w.name)),
                    }
                }
            };
            match notice {
                Some(n) if w.said.as_ref() != Some(&n) => {
                    w.said = Some(n.clone());
                    notices.push(n);
                }
                Some(_) => {}
                None => w.said = None,
            }
        }
        notices
    }
}

//! SIGINT / SIGTERM as a flag that the progress callback polls, so a restore stops between
//! two solver steps and the caller can clean up (no partial output, temp files removed).
//! A second signal while the first is being honoured exits at once (exit 128 + signal).
//! On Linux the process also asks for SIGTERM when its parent dies, so a cancelled GIMP
//! plug-in does not leave it running; that SIGTERM exits at once, because nobody is left to
//! read a result and a step that never polls (a long classical fill) would otherwise run on
//! for minutes.
//!
//! While the process is blocked reading its input ([`InputWait`]) a signal ends it at once
//! with exit 130: it has written nothing partial and holds no temporary file then, and a
//! blocking read (restarted after the handler, SA_RESTART) would otherwise never look at
//! the flag — an idle `serve` would ignore SIGTERM until its next request.
//! SIGXFSZ is ignored, so that a write past RLIMIT_FSIZE fails with EFBIG and the caller
//! removes its temporary file, instead of the process dying with the file left behind.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the process is blocked reading input (see [`InputWait`]).
static WAITING_FOR_INPUT: AtomicBool = AtomicBool::new(false);

/// The parent's pid at start-up (0 = unknown), to tell a parent's death from a user's signal.
static PARENT: AtomicI32 = AtomicI32::new(0);

/// Whether SIGINT or SIGTERM arrived since start.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls here: atomics, getppid and _exit.
    let parent = PARENT.load(Ordering::SeqCst);
    let orphaned = parent != 0 && unsafe { libc::getppid() } != parent;
    if INTERRUPTED.swap(true, Ordering::SeqCst) || orphaned {
        unsafe { libc::_exit(128 + sig) };
    }
    if WAITING_FOR_INPUT.load(Ordering::SeqCst) {
        unsafe { libc::_exit(crate::error::exit::INTERRUPTED) };
    }
}

/// Marks a stretch where the process only waits for input bytes: a signal then exits at
/// once (130). Nothing may be written, and no temporary file may exist, while one is alive.
pub struct InputWait(());

impl InputWait {
    /// `Err(Interrupted)` when a signal came already, so the caller does not block.
    pub fn begin() -> crate::error::Result<InputWait> {
        WAITING_FOR_INPUT.store(true, Ordering::SeqCst);
        if interrupted() {
            WAITING_FOR_INPUT.store(false, Ordering::SeqCst);
            return Err(crate::error::Error::Interrupted);
        }
        Ok(InputWait(()))
    }
}

impl Drop for InputWait {
    fn drop(&mut self) {
        WAITING_FOR_INPUT.store(false, Ordering::SeqCst);
    }
}

/// Installs the handlers. Call once, early in `main`.
pub fn install() {
    #[cfg(unix)]
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        // SA_RESTART keeps blocking reads and writes from failing with EINTR; the flag is
        // polled between solver steps anyway.
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    #[cfg(target_os = "linux")]
    unsafe {
        let parent = libc::getppid();
        PARENT.store(parent, Ordering::SeqCst);
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0,
            0,
            0,
        );
        // A parent that died just before prctl has re-parented us already. (Comparing with
        // 1 would be wrong: in a container the parent may really be pid 1.)
        if libc::getppid() != parent {
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
    }
}

/// For a run meant to outlive the shell that started it (`train`): no SIGTERM when the
/// parent dies, and a parent's death is no longer taken for a second signal. SIGINT and
/// SIGTERM still set the flag ([`install`] first).
pub fn outlive_parent() {
    PARENT.store(0, Ordering::SeqCst);
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, 0 as libc::c_ulong, 0, 0, 0);
    }
}

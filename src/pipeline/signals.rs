//! SIGINT / SIGTERM as a flag that the progress callback polls, so a restore stops between
//! two solver steps and the caller can clean up (no partial output, temp files removed).
//! A second signal while the first is being honoured exits at once (exit 128 + signal).
//! On Linux the process also asks for SIGTERM when its parent dies, so a cancelled GIMP
//! plug-in does not leave it running.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM arrived since start.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls here: an atomic swap and _exit.
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        unsafe { libc::_exit(128 + sig) };
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
    }
    #[cfg(target_os = "linux")]
    unsafe {
        let parent = libc::getppid();
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

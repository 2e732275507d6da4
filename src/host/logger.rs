//! The `log` crate's logger over the raw `proxy_log` hostcall. The SDK's logger unwraps the
//! hostcall's status, so a host that refuses a log line would panic the VM; this one ignores it.

use super::hostcalls as host;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            host::log(record.level(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger at `info`: the host filters further by its own level.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

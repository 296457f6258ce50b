package service

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// httpErrorLog is the net/http server's error log. It passes lines to the
// service logger at WARN, except failed TLS handshakes (scanners, clients
// with a wrong CA, probes): at most burst of those are logged per
// interval, and the first one logged after a suppression says how many
// were suppressed. Every one is counted in overlap_tls_handshake_errors_total.
type httpErrorLog struct {
	log      *slog.Logger
	met      *metrics
	interval time.Duration
	burst    int
	now      func() time.Time

	mu         sync.Mutex
	start      time.Time // of the current interval
	logged     int       // handshake errors logged in it
	suppressed int       // since the last one logged
}

func newHTTPErrorLog(l *slog.Logger, m *metrics, interval time.Duration, burst int) *httpErrorLog {
	return &httpErrorLog{log: l, met: m, interval: interval, burst: burst, now: time.Now}
}

func (w *httpErrorLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if !strings.Contains(line, "TLS handshake error") {
		w.log.Warn(line)
		return len(p), nil
	}
	w.met.tlsErrors.Inc()
	w.mu.Lock()
	now := w.now()
	if now.Sub(w.start) >= w.interval {
		w.start, w.logged = now, 0
	}
	if w.logged >= w.burst {
		w.suppressed++
		w.mu.Unlock()
		return len(p), nil
	}
	w.logged++
	suppressed := w.suppressed
	w.suppressed = 0
	w.mu.Unlock()
	if suppressed > 0 {
		w.log.Warn(line, "suppressed_since_last", suppressed)
	} else {
		w.log.Warn(line)
	}
	return len(p), nil
}

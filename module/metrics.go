package module

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the module's Prometheus metrics, on a private registry (never
// the global one: mesibo may load the module twice). Labels are bounded:
// transport, profile, outcome, stage — never a user or a message.
type metrics struct {
	reg *prometheus.Registry

	commands          *prometheus.CounterVec // profile, outcome (done, failed, expired, rejected)
	commandsAccepted  *prometheus.CounterVec // profile
	latency           *prometheus.HistogramVec
	callback          prometheus.Histogram
	inflight          prometheus.Gauge
	commandsOpen      prometheus.Gauge
	coreQueue         prometheus.Gauge
	coreQueueMax      prometheus.Gauge
	queueDropped      *prometheus.CounterVec
	telemetryIn       *prometheus.CounterVec
	telemetryOut      prometheus.Counter
	telemetryHeld     prometheus.Counter
	telemetryDropped  *prometheus.CounterVec
	decodeErrors      *prometheus.CounterVec
	linkUp            *prometheus.GaugeVec
	devicesOnline     prometheus.Gauge
	devicesRegistered prometheus.Gauge
	usersOnline       prometheus.Gauge
	watchers          prometheus.Gauge
	alerts            prometheus.Counter
	messagesOut       prometheus.Counter
	sendErrors        prometheus.Counter
	messageStatus     *prometheus.CounterVec
	duplicates        prometheus.Counter
	denied            prometheus.Counter
	rateLimited       prometheus.Counter
	resends           prometheus.Counter
	strayReplies      prometheus.Counter
	spoofed           prometheus.Counter
	stalePresence     prometheus.Counter
	reloads           *prometheus.CounterVec
	panics            *prometheus.CounterVec
}

func newMetrics() *metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &metrics{reg: r}
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_commands_total", Help: "Commands by final outcome (done, failed, expired, rejected)."}, []string{"profile", "outcome"})
	m.commandsAccepted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_commands_accepted_total", Help: "Commands accepted for a device."}, []string{"profile"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mesibo_iot_command_latency_seconds", Help: "Time from accepting a command to a stage: sent (link took it), delivered (device accepted), done.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)}, []string{"stage"})
	m.callback = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mesibo_iot_callback_seconds", Help: "Time inside on_message for messages the module consumes.", Buckets: prometheus.ExponentialBuckets(1e-6, 2, 16)})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesibo_iot_commands_inflight", Help: "Commands handed to links and not finished."})
	m.commandsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesibo_iot_commands_open", Help: "Accepted commands not finished (queued and in flight)."})
	m.coreQueue = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesibo_iot_core_queue_depth", Help: "Events waiting for the core goroutine."})
	m.coreQueueMax = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesibo_iot_core_queue_depth_max", Help: "Largest number of events seen waiting for the core goroutine since the module started."})
	m.queueDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_core_queue_dropped_total", Help: "Events dropped because the core queue was full."}, []string{"kind"})
	m.telemetryIn = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_telemetry_received_total", Help: "Telemetry messages received from devices."}, []string{"transport"})
	m.telemetryOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_telemetry_sent_total", Help: "Telemetry messages sent to watchers."})
	m.telemetryHeld = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_telemetry_held_total", Help: "Telemetry held for watchers who are offline (coalesced)."})
	m.telemetryDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_telemetry_dropped_total", Help: "Telemetry dropped, by reason."}, []string{"reason"})
	m.decodeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_device_data_dropped_total", Help: "Malformed, spoofed or oversized device data dropped."}, []string{"transport"})
	m.linkUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mesibo_iot_link_up", Help: "1 while a transport's link (broker connection) is up."}, []string{"transport"})
	m.devicesOnline = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesibo_iot_devices_online", Help: "Devices currently online."})
	m.devicesRegistered = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesibo_iot_devices_registered", Help: "Devices in the devices file."})
	m.usersOnline = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesibo_iot_users_online", Help: "Users online as seen through on_login."})
	m.watchers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesibo_iot_watchers", Help: "Telemetry watchers."})
	m.alerts = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_alerts_total", Help: "Alerts sent."})
	m.messagesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_messages_sent_total", Help: "Messages the module sent through mesibo."})
	m.sendErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_send_errors_total", Help: "send_message calls that failed."})
	m.messageStatus = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_message_status_total", Help: "on_message_status reports for the module's messages."}, []string{"status"})
	m.duplicates = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_duplicate_messages_total", Help: "Messages seen twice (same sender and id) and not run again."})
	m.denied = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_denied_total", Help: "Messages refused for lack of rights."})
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_rate_limited_total", Help: "Commands refused by a rate limit."})
	m.resends = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_command_resends_total", Help: "Unfinished commands sent again after a link or device came back."})
	m.strayReplies = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_stray_replies_total", Help: "Replies for unknown or finished commands."})
	m.spoofed = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_spoofed_replies_total", Help: "Replies from a device for another device's command."})
	m.stalePresence = prometheus.NewCounter(prometheus.CounterOpts{Name: "mesibo_iot_stale_presence_total", Help: "Presence events older than the latest seen, ignored."})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_reloads_total", Help: "Devices file reloads by result."}, []string{"result"})
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesibo_iot_panics_recovered_total", Help: "Panics recovered, by where."}, []string{"where"})
	for _, c := range []prometheus.Collector{m.commands, m.commandsAccepted, m.latency, m.callback, m.inflight, m.commandsOpen, m.coreQueue, m.coreQueueMax, m.queueDropped,
		m.telemetryIn, m.telemetryOut, m.telemetryHeld, m.telemetryDropped, m.decodeErrors, m.linkUp, m.devicesOnline, m.devicesRegistered,
		m.usersOnline, m.watchers, m.alerts, m.messagesOut, m.sendErrors, m.messageStatus, m.duplicates, m.denied, m.rateLimited,
		m.resends, m.strayReplies, m.spoofed, m.stalePresence, m.reloads, m.panics} {
		f(c)
	}
	return m
}

func statusLabel(s uint64) string {
	switch s {
	case StatusDelivered:
		return "delivered"
	case StatusRead:
		return "read"
	}
	if s >= StatusFail {
		return "failed"
	}
	return "other"
}

// metricsServer serves /metrics; owned and stopped by the module.
type metricsServer struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// startMetrics serves /metrics on addr. A panic in a request (fault point
// "metrics") or in the server is recovered and logged; net/http's own errors
// go to mesibo's log too (never to stderr).
func startMetrics(ctx context.Context, addr string, m *metrics, logf func(Level, string), fault func(string)) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Timeout: 5 * time.Second, MaxRequestsInFlight: 4})
	mux := http.NewServeMux()
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				m.panics.WithLabelValues("metrics").Inc()
				logf(LevelError, fmt.Sprintf("iot: recovered panic in metrics: %v\n%s", p, debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		if fault != nil {
			fault("metrics")
		}
		h.ServeHTTP(w, r)
	}))
	s := &metricsServer{ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          log.New(logWriter(func(s string) { logf(LevelWarn, "iot: metrics: "+s) }), "", 0),
	}}
	go func() {
		defer close(s.done)
		defer func() {
			if r := recover(); r != nil {
				m.panics.WithLabelValues("metrics").Inc()
				logf(LevelError, fmt.Sprintf("iot: recovered panic in the metrics server (the endpoint is down): %v\n%s", r, debug.Stack()))
			}
		}()
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// logWriter adapts a log function to the io.Writer of a log.Logger.
type logWriter func(string)

func (f logWriter) Write(p []byte) (int, error) {
	f(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Addr is the address the endpoint listens on.
func (s *metricsServer) Addr() string { return s.ln.Addr().String() }

// Close stops the server and waits for its goroutine.
func (s *metricsServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}

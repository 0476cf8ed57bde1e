package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestTLSVerifiesByDefault: with nothing but an ssl:// broker URL, the
// bridge verifies the broker's certificate against the system's roots and
// refuses a broker whose certificate they do not sign; verification is off
// only with mqtt_insecure_skip_verify (docs/security.md).
func TestTLSVerifiesByDefault(t *testing.T) {
	o, err := OptionsFromConfig(map[string]string{"mqtt_broker": "ssl://broker.example:8883"})
	if err != nil {
		t.Fatal(err)
	}
	if o.InsecureSkipVerify {
		t.Fatal("InsecureSkipVerify is on by default")
	}
	tr, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if tr.tls == nil || tr.tls.InsecureSkipVerify || tr.tls.RootCAs != nil {
		t.Fatalf("default TLS config %+v: want verification against the system roots", tr.tls)
	}
	_ = tr.Close()

	needMosquitto(t)
	pki := newTestPKI(t)
	br := startMosquitto(t, "ssl", fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\n", pki.caFile, pki.serverCert, pki.serverKey))
	_, sink, lb := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "sec"}, "d1")
	down := sink.waitLink(t, false, 1)
	if !strings.Contains(down.detail, "certificate signed by unknown authority") || !lb.find(LevelError, "unknown authority") {
		t.Fatalf("a broker certificate the system does not trust: detail %q; log:\n%s", down.detail, lb)
	}
	_, isink, _ := newBridge(t, Options{Brokers: []string{br.URL()}, TopicPrefix: "sec", BridgeID: "b2", InsecureSkipVerify: true}, "d1")
	isink.waitLink(t, true, 1)
}

// TestBrokerURLPasswordNotShown: credentials put in mqtt_broker are refused
// and the error shows no part of the password, even when the URL does not
// parse.
func TestBrokerURLPasswordNotShown(t *testing.T) {
	for _, u := range []string{
		"tcp://bridge:pw-SECRET@127.0.0.1:1883",
		"tcp://bridge:pw SECRET@127.0.0.1:1883",
		"tcp://bridge:pw/SECRET@127.0.0.1:1883",
		"tcp://bridge:pw,SECRET@127.0.0.1:1883",
		"tcp://127.0.0.1:1883,ssl://bridge:pw#SECRET@host:8883",
		"bridge:pw%SECRET@127.0.0.1",
	} {
		_, err := OptionsFromConfig(map[string]string{"mqtt_broker": u})
		if err == nil {
			t.Errorf("%q accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "pw") {
			t.Errorf("%q: the error shows the password: %v", u, err)
		}
	}
}

// TestEmbeddedBrokerLoopbackByDefault: the embedded broker listens on
// 127.0.0.1:1883 unless mqtt_listen says otherwise, and warns when it
// listens elsewhere without users.
func TestEmbeddedBrokerLoopbackByDefault(t *testing.T) {
	o, err := OptionsFromConfig(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	o, err = o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if !o.Embedded || o.EmbeddedListen != "127.0.0.1:1883" {
		t.Fatalf("default: embedded %v on %q", o.Embedded, o.EmbeddedListen)
	}
	for _, c := range []struct {
		listen, user string
		warn         bool
	}{{"127.0.0.1:0", "", false}, {"0.0.0.0:0", "", true}, {"0.0.0.0:0", "bridge", false}} {
		lb := &logBuf{t: t}
		tr, err := New(Options{Embedded: true, EmbeddedListen: c.listen, Username: c.user, Password: "pw", Logf: lb.logf})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Start(context.Background(), &fakeSink{}); err != nil {
			t.Fatal(err)
		}
		if got := lb.find(LevelWarn, "without authentication"); got != c.warn {
			t.Errorf("listen %s user %q: warning %v, want %v; log:\n%s", c.listen, c.user, got, c.warn, lb)
		}
		_ = tr.Close()
	}
}

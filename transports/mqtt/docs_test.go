package mqtt

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateDoc = flag.Bool("update", false, "rewrite the generated key table of docs/mqtt.md")

const mqttDoc = "../../docs/mqtt.md"

func mqttKeysTable() string {
	var b strings.Builder
	b.WriteString("| key | default | allowed | what it does |\n|---|---|---|---|\n")
	for _, k := range ConfigKeys() {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", k.Name, k.Default, k.Allowed, k.Doc)
	}
	return b.String()
}

// TestDocMatchesKeys: the key table of docs/mqtt.md is the one the code
// accepts (go test ./transports/mqtt -run TestDocMatchesKeys -update
// rewrites it).
func TestDocMatchesKeys(t *testing.T) {
	doc, err := os.ReadFile(mqttDoc)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<!-- keys:begin -->\n(.*?)<!-- keys:end -->`)
	m := re.FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/mqtt.md lacks the keys:begin/keys:end markers")
	}
	want := mqttKeysTable()
	if string(m[1]) == want {
		return
	}
	if *updateDoc {
		out := re.ReplaceAll(doc, []byte("<!-- keys:begin -->\n"+strings.ReplaceAll(want, "$", "$$")+"<!-- keys:end -->"))
		if err := os.WriteFile(mqttDoc, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("the key table in docs/mqtt.md is out of date; run go test ./transports/mqtt -run TestDocMatchesKeys -update\nwant:\n%s", want)
}

// TestDocumentedDefaults: writing each documented default (where it is a
// value) gives the same options as leaving the key out.
func TestDocumentedDefaults(t *testing.T) {
	base, err := OptionsFromConfig(map[string]string{"mqtt_broker": "tcp://127.0.0.1:1883"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ConfigKeys() {
		if strings.HasPrefix(k.Default, "(") || strings.Contains(k.Default, "<") || k.Name == "mqtt_broker" || k.Name == "mqtt_listen" {
			continue
		}
		got, err := OptionsFromConfig(map[string]string{"mqtt_broker": "tcp://127.0.0.1:1883", k.Name: k.Default})
		if err != nil {
			t.Errorf("%s = %s: %v", k.Name, k.Default, err)
			continue
		}
		a, _ := got.withDefaults()
		b, _ := base.withDefaults()
		if fmt.Sprintf("%+v", a) != fmt.Sprintf("%+v", b) {
			t.Errorf("%s = %s is not the default:\n%+v\n%+v", k.Name, k.Default, a, b)
		}
	}
}

// TestDocMentionsEveryKey: docs/mqtt.md and the example configuration use
// only keys that exist.
func TestDocMentionsEveryKey(t *testing.T) {
	known := map[string]bool{}
	for _, k := range ConfigKeys() {
		known[k.Name] = true
	}
	for _, f := range []string{mqttDoc, "../../examples/mosquitto/README.md"} {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		re := regexp.MustCompile(`\bmqtt_[a-z_]+\b`)
		for sc.Scan() {
			for _, k := range re.FindAllString(sc.Text(), -1) {
				if !known[k] && k != "mqtt_test" {
					t.Errorf("%s mentions %s, which is not a key", f, k)
				}
			}
		}
		fh.Close()
	}
}

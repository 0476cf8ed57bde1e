package mqtt

import (
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// maintain keeps this bridge's retained interest topics equal to what
// SetInterest asked (after every reconnect too), and subscribes to device
// states again when SetEndpoints adds devices.
func (t *Transport) maintain() {
	defer t.wg.Done()
	defer t.log.recoverLog("maintenance")
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.resub:
			t.safely("re-subscribing states", t.resubscribeStates)
			continue
		case <-t.kick:
		case <-retry.C:
		}
		ok := true
		t.safely("publishing interest", func() {
			t.fault("mqtt.maintain")
			ok = t.syncInterest()
		})
		if !ok {
			retry.Reset(time.Second)
		}
	}
}

func (t *Transport) safely(where string, f func()) {
	defer t.log.recoverLog(where)
	f()
}

// syncInterest publishes the difference between what the core wants and
// what is on the broker; false if some publication failed (retried later).
func (t *Transport) syncInterest() bool {
	if t.tp.share == "" {
		return true
	}
	t.mu.Lock()
	cn := t.conn
	if cn == nil {
		t.mu.Unlock()
		return true // done again after the next connect
	}
	if t.pubGen != cn.gen {
		// a new session: the broker may have lost retained messages (a
		// restart without persistence); publish everything again
		t.published = map[string]bool{}
		t.pubGen = cn.gen
	}
	type change struct {
		dev string
		set bool
		tok paho.Token
	}
	var changes []change
	for dev := range t.want {
		if !t.published[dev] {
			changes = append(changes, change{dev: dev, set: true})
		}
	}
	for dev := range t.published {
		if !t.want[dev] {
			changes = append(changes, change{dev: dev})
		}
	}
	for dev := range t.staleOwn {
		if t.want[dev] {
			delete(t.staleOwn, dev)
		} else if !t.published[dev] {
			changes = append(changes, change{dev: dev})
		}
	}
	t.mu.Unlock()
	if len(changes) == 0 {
		return true
	}
	for i := range changes {
		payload := []byte{}
		if changes[i].set {
			payload = []byte{1}
		}
		changes[i].tok = cn.c.Publish(t.tp.interest(t.opts.BridgeID, changes[i].dev), 1, true, payload)
	}
	ok := true
	done := make([]bool, len(changes))
	for i := range changes {
		if err := t.waitToken(changes[i].tok, cn); err != nil {
			t.log.printf(LevelWarn, "publishing interest in %q: %v (retrying)", changes[i].dev, err)
			ok = false
			break
		}
		done[i] = true
	}
	t.mu.Lock()
	if t.pubGen == cn.gen {
		for i, c := range changes {
			if !done[i] {
				continue
			}
			if c.set {
				t.published[c.dev] = true
			} else {
				delete(t.published, c.dev)
				delete(t.staleOwn, c.dev)
			}
		}
	}
	t.mu.Unlock()
	t.log.printf(LevelDebug, "interest topics updated (%d changes)", len(changes))
	return ok
}

// resubscribeStates subscribes to device states again: the broker sends
// every retained state again, so that devices just added to the devices
// file get their presence (known ones are deduplicated by Seq).
func (t *Transport) resubscribeStates() {
	t.mu.Lock()
	cn := t.conn
	t.mu.Unlock()
	if cn == nil {
		return // the next connect subscribes anyway
	}
	tok := cn.c.Subscribe(t.tp.subStates(), 1, nil)
	if err := t.waitToken(tok, cn); err != nil {
		t.log.printf(LevelWarn, "subscribing to device states again: %v", err)
	}
}

package mqtt

import "strings"

// topics builds and parses the topics of one bridge.
type topics struct {
	prefix string // without trailing '/'
	bridge string
	share  string
}

func (tp topics) cmd(dev string) string      { return tp.prefix + "/dev/" + dev + "/cmd" }
func (tp topics) devReply(dev string) string { return tp.prefix + "/dev/" + dev + "/reply" }
func (tp topics) devTelemetry(dev string) string {
	return tp.prefix + "/dev/" + dev + "/telemetry"
}
func (tp topics) devState(dev string) string { return tp.prefix + "/dev/" + dev + "/state" }
func (tp topics) bridgeReply(bridge, dev string) string {
	return tp.prefix + "/bridge/" + bridge + "/reply/" + dev
}
func (tp topics) bridgeState(bridge string) string { return tp.prefix + "/bridge/" + bridge + "/state" }
func (tp topics) interest(bridge, dev string) string {
	return tp.prefix + "/bridge/" + bridge + "/interest/" + dev
}
func (tp topics) forward(bridge, dev string) string {
	return tp.prefix + "/bridge/" + bridge + "/telemetry/" + dev
}

// Subscription filters.
func (tp topics) subBridgeReplies() string { return tp.prefix + "/bridge/" + tp.bridge + "/reply/+" }
func (tp topics) subDevReplies() string    { return tp.prefix + "/dev/+/reply" }
func (tp topics) subStates() string        { return tp.prefix + "/dev/+/state" }
func (tp topics) subTelemetry() string {
	if tp.share != "" {
		return "$share/" + tp.share + "/" + tp.prefix + "/dev/+/telemetry"
	}
	return tp.prefix + "/dev/+/telemetry"
}
func (tp topics) subInterest() string     { return tp.prefix + "/bridge/+/interest/+" }
func (tp topics) subForwarded() string    { return tp.prefix + "/bridge/" + tp.bridge + "/telemetry/+" }
func (tp topics) subBridgeStates() string { return tp.prefix + "/bridge/+/state" }

// subscriptions returns every filter this bridge subscribes to, with its QoS.
func (tp topics) subscriptions() map[string]byte {
	m := map[string]byte{
		tp.subBridgeReplies(): 1,
		tp.subDevReplies():    1,
		tp.subStates():        1,
		tp.subTelemetry():     1,
	}
	if tp.share != "" {
		m[tp.subInterest()] = 1
		m[tp.subForwarded()] = 1
		m[tp.subBridgeStates()] = 1
	}
	return m
}

// inKind is what an incoming message is, by its topic.
type inKind uint8

const (
	inReply       inKind = iota + 1 // a device's reply (either reply topic)
	inTelemetry                     // device telemetry from P/dev/D/telemetry
	inForwarded                     // telemetry another bridge forwarded to us
	inState                         // a device's state
	inBridgeState                   // a bridge's state
	inInterest                      // a bridge's interest in a device
)

func (k inKind) String() string {
	switch k {
	case inReply:
		return "reply"
	case inTelemetry:
		return "telemetry"
	case inForwarded:
		return "forwarded telemetry"
	case inState:
		return "state"
	case inBridgeState:
		return "bridge state"
	case inInterest:
		return "interest"
	}
	return "unknown"
}

// parse classifies topic. dev is the device id of the topic (if any), bridge
// the bridge id (if any). ok is false for topics this bridge does not handle.
func (tp topics) parse(topic string) (kind inKind, dev, bridge string, ok bool) {
	rest, found := strings.CutPrefix(topic, tp.prefix+"/")
	if !found {
		return 0, "", "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[0] == "dev" && parts[1] != "":
		dev = parts[1]
		switch parts[2] {
		case "reply":
			return inReply, dev, "", true
		case "telemetry":
			return inTelemetry, dev, "", true
		case "state":
			return inState, dev, "", true
		}
	case len(parts) == 3 && parts[0] == "bridge" && parts[1] != "" && parts[2] == "state":
		return inBridgeState, "", parts[1], true
	case len(parts) == 4 && parts[0] == "bridge" && parts[1] != "" && parts[3] != "":
		bridge, dev = parts[1], parts[3]
		switch parts[2] {
		case "reply":
			if bridge == tp.bridge {
				return inReply, dev, bridge, true
			}
		case "telemetry":
			if bridge == tp.bridge {
				return inForwarded, dev, bridge, true
			}
		case "interest":
			return inInterest, dev, bridge, true
		}
	}
	return 0, "", "", false
}

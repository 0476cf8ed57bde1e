// Package mqtt is the MQTT transport of mesibo-iot: the bridge publishes
// commands to devices and hears their replies, telemetry and presence through
// an MQTT broker (Mosquitto, EMQX, HiveMQ, VerneMQ, or the embedded
// mochi-mqtt broker this package can start for small setups and tests).
//
// Topics (prefix P, default "mesibo-iot"; this bridge's id B; a device D):
//
//	P/dev/D/cmd               bridge → device, CBOR Command, QoS 1 (ReplyTo = B)
//	P/bridge/B/reply/D        device → bridge, CBOR Reply, QoS 1 (command had ReplyTo)
//	P/dev/D/reply             device → bridge, CBOR Reply, QoS 1 (no ReplyTo)
//	P/dev/D/telemetry         device → bridges, CBOR Telemetry, QoS of the device's choice
//	P/dev/D/state             device, retained CBOR State; last will = State{Online: false}
//	P/bridge/B/state          this bridge, retained State{Device: B}; last will offline
//	P/bridge/B/interest/D     retained 0x01 while B has watchers of D; empty clears
//	P/bridge/B/telemetry/D    telemetry another bridge took for D, forwarded to B
//
// With a share group (mqtt_share_group) the bridges take device telemetry from
// the shared subscription $share/<group>/P/dev/+/telemetry, so each message
// reaches one bridge; that bridge hands it to its own core and republishes it
// to every other online bridge that declared interest in the device. Bridges
// whose retained state is offline (their last will) get nothing forwarded.
//
// The device id in the topic is the truth: a payload naming another device,
// a device not in the devices file, a payload over the size limit, one that
// does not decode, or one of the wrong kind for its topic is dropped and
// reported through Sink.Dropped.
//
// Inside mesibo nothing here may panic or block: every goroutine recovers
// and logs panics, every wait has a timeout or a context, handlers hand
// replies to the Sink themselves (waiting for room in the core's queue, as
// many at most as the broker's in-flight window) and other messages to a
// small pool of workers through bounded queues (telemetry is dropped when
// they are full; states wait for room), and Close stops every goroutine the
// transport started.
package mqtt

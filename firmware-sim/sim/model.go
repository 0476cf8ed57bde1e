package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// outcome is what a command ends with: done with a result, or failed with a
// code and text.
type outcome struct {
	result map[string]any
	code   wire.ReplyCode // 0: done
	text   string
}

func done(result map[string]any) outcome { return outcome{result: result} }

func failed(code wire.ReplyCode, format string, args ...any) outcome {
	return outcome{code: code, text: fmt.Sprintf(format, args...)}
}

// action is how a model starts a command: either an immediate outcome
// (run == 0 and finish == nil), or a run time after which finish is called.
type action struct {
	outcome
	// run is the simulated run time (before TimeScale).
	run time.Duration
	// exclusive: other commands get busy while it runs (unless they
	// interrupt it, see model.interrupts).
	exclusive bool
	// finish is called under the device lock when the run time is over
	// (interrupted == "") or when another command or a reboot interrupts it
	// (interrupted names the cause).
	finish func(now time.Time, interrupted string) outcome
}

// model is a device type's behaviour. Every method is called with the
// device's lock held, so models need no locking of their own.
type model interface {
	// begin starts verb with validated arguments.
	begin(verb string, args map[string]any, now time.Time) action
	// interrupts: verb may be sent while an exclusive command runs; that
	// command is interrupted first.
	interrupts(verb string) bool
	// sample advances the simulated physics one step (random walks, slow
	// drains) and returns the telemetry values.
	sample(now time.Time) map[string]any
	// peek returns the current values without advancing anything.
	peek(now time.Time) map[string]any
	// set forces a telemetry value.
	set(field string, v float64) error
	// period is the telemetry period the device asked for (set_interval),
	// 0 = the default.
	period() time.Duration
	// summary is a few characters for the terminal view.
	summary(now time.Time) string
}

func newModel(typ string, rng *rand.Rand, scale float64, spec DeviceSpec) model {
	switch typ {
	case TypeRover:
		return newRover(rng, scale, spec.Armed)
	case TypeEnvSensor:
		return newEnvSensor(rng)
	case TypeRelay:
		return newRelay(rng)
	}
	return nil
}

func defaultPeriod(typ string) time.Duration {
	if typ == TypeRover {
		return 2 * time.Second
	}
	return 5 * time.Second
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

func scaled(d time.Duration, scale float64) time.Duration {
	if scale <= 0 || scale == 1 {
		return d
	}
	return time.Duration(float64(d) / scale)
}

func argFloat(args map[string]any, name string) float64 {
	switch v := args[name].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	}
	return 0
}

func argInt(args map[string]any, name string) int64 {
	switch v := args[name].(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return 0
}

// ---- rover ----

// Rover physics at demo scale: full speed 1 m/s and 180°/s (times the
// mode's factor), a move or turn takes at most 3 s.
const (
	roverFullSpeed = 1.0   // m/s at speed=1, mode normal
	roverTurnRate  = 180.0 // deg/s at speed=1, mode normal
	roverMaxRun    = 3 * time.Second
	roverDrainPerM = 0.2  // % battery per metre driven
	roverDrainTurn = 0.05 // % battery per full turn (360°)
	roverDrainIdle = 0.01 // % battery per telemetry step
)

var roverModes = map[string]float64{"eco": 0.6, "normal": 1, "sport": 1.5}

type motion struct {
	verb    string
	start   time.Time
	dur     time.Duration // real time
	dist    float64       // cm, signed (move)
	angle   float64       // deg, signed (turn)
	speedMS float64       // m/s while moving
}

func (m *motion) progress(now time.Time) float64 {
	if m.dur <= 0 {
		return 1
	}
	return clamp(float64(now.Sub(m.start))/float64(m.dur), 0, 1)
}

type rover struct {
	rng      *rand.Rand
	scale    float64
	armed    bool
	mode     string
	lights   bool
	battery  float64 // %
	odometry float64 // m since boot
	heading  float64 // deg
	obstacle float64 // cm
	motion   *motion
}

func newRover(rng *rand.Rand, scale float64, armed bool) *rover {
	return &rover{
		rng:      rng,
		scale:    scale,
		armed:    armed,
		mode:     "normal",
		battery:  round(80+rng.Float64()*20, 1),
		obstacle: round(60+rng.Float64()*200, 0),
	}
}

func (r *rover) interrupts(verb string) bool { return verb == "stop" || verb == "disarm" }

func (r *rover) period() time.Duration { return 0 }

func (r *rover) begin(verb string, args map[string]any, now time.Time) action {
	switch verb {
	case "move", "turn":
		if !r.armed {
			return action{outcome: failed(wire.ReplyNotAllowed, "motors disarmed")}
		}
		if r.battery <= 0 {
			return action{outcome: failed(wire.ReplyNotAllowed, "battery empty")}
		}
		speed := argFloat(args, "speed")
		if speed <= 0 {
			return action{outcome: failed(wire.ReplyBadArgument, "speed must be above 0 to %s", verb)}
		}
		factor := roverModes[r.mode]
		m := &motion{verb: verb, start: now, speedMS: speed * roverFullSpeed * factor}
		var secs float64
		if verb == "move" {
			m.dist = argFloat(args, "distance")
			secs = math.Abs(m.dist) / 100 / m.speedMS
		} else {
			m.angle = argFloat(args, "angle")
			secs = math.Abs(m.angle) / (speed * roverTurnRate * factor)
			m.speedMS = 0
		}
		run := min(time.Duration(secs*float64(time.Second)), roverMaxRun)
		m.dur = scaled(run, r.scale)
		r.motion = m
		return action{run: run, exclusive: true, finish: func(now time.Time, interrupted string) outcome {
			return r.endMotion(m, now, interrupted)
		}}
	case "wait":
		run := time.Duration(argInt(args, "duration")) * time.Millisecond
		return action{run: run, exclusive: true, finish: func(_ time.Time, interrupted string) outcome {
			if interrupted != "" {
				return failed(wire.ReplyNotAllowed, "wait interrupted by %s", interrupted)
			}
			return done(nil)
		}}
	case "stop":
		return action{outcome: done(map[string]any{"odometry": round(r.odometry, 2)})}
	case "arm":
		r.armed = true
		return action{outcome: done(map[string]any{"armed": true})}
	case "disarm":
		r.armed = false
		return action{outcome: done(map[string]any{"armed": false})}
	case "mode":
		m, _ := args["mode"].(string)
		if _, ok := roverModes[m]; !ok {
			return action{outcome: failed(wire.ReplyBadArgument, "mode %q: want eco, normal or sport", m)}
		}
		r.mode = m
		return action{outcome: done(map[string]any{"mode": m})}
	case "lights":
		on, _ := args["state"].(bool)
		r.lights = on
		return action{outcome: done(map[string]any{"lights": on})}
	case "say":
		phrase, _ := args["phrase"].(string)
		run := min(time.Duration(len(phrase))*60*time.Millisecond, roverMaxRun)
		return action{run: run, finish: func(time.Time, string) outcome {
			return done(map[string]any{"said": phrase})
		}}
	}
	return action{outcome: failed(wire.ReplyUnknownVerb, "rover does not implement %q", verb)}
}

func (r *rover) endMotion(m *motion, now time.Time, interrupted string) outcome {
	p := 1.0
	if interrupted != "" {
		p = m.progress(now)
	}
	if r.motion == m {
		r.motion = nil
	}
	travelled := m.dist * p // cm
	turned := m.angle * p
	r.odometry += math.Abs(travelled) / 100
	r.heading = math.Mod(r.heading+turned+360, 360)
	r.battery = math.Max(0, r.battery-math.Abs(travelled)/100*roverDrainPerM-math.Abs(turned)/360*roverDrainTurn)
	if m.dist > 0 {
		r.obstacle = math.Max(5, r.obstacle-travelled)
	}
	if interrupted != "" {
		if m.verb == "move" {
			return failed(wire.ReplyNotAllowed, "move interrupted by %s after %.0f cm", interrupted, math.Abs(travelled))
		}
		return failed(wire.ReplyNotAllowed, "turn interrupted by %s after %.0f°", interrupted, math.Abs(turned))
	}
	res := map[string]any{"odometry": round(r.odometry, 2), "battery": round(r.battery, 1)}
	if m.verb == "turn" {
		res["heading"] = round(r.heading, 1)
	}
	return done(res)
}

func (r *rover) sample(now time.Time) map[string]any {
	r.battery = math.Max(0, r.battery-roverDrainIdle)
	r.obstacle += r.rng.NormFloat64() * 8
	if r.obstacle < 15 {
		r.obstacle = 30 - r.obstacle
	}
	if r.obstacle > 300 {
		r.obstacle = 600 - r.obstacle
	}
	return r.peek(now)
}

func (r *rover) peek(now time.Time) map[string]any {
	odo, bat, speed := r.odometry, r.battery, 0.0
	if m := r.motion; m != nil {
		p := m.progress(now)
		odo += math.Abs(m.dist) * p / 100
		bat -= math.Abs(m.dist)*p/100*roverDrainPerM + math.Abs(m.angle)*p/360*roverDrainTurn
		if p < 1 {
			speed = m.speedMS
		}
	}
	return map[string]any{
		"battery":  round(math.Max(0, bat), 1),
		"odometry": round(odo, 2),
		"obstacle": round(r.obstacle, 0),
		"speed":    round(speed, 2),
	}
}

func (r *rover) set(field string, v float64) error {
	switch field {
	case "battery":
		r.battery = clamp(v, 0, 100)
	case "odometry":
		r.odometry = math.Max(0, v)
	case "obstacle":
		r.obstacle = math.Max(0, v)
	case "speed":
		return fmt.Errorf("speed follows the motion; send a move instead")
	default:
		return fmt.Errorf("rover has no field %q (battery, odometry, obstacle)", field)
	}
	return nil
}

func (r *rover) summary(now time.Time) string {
	v := r.peek(now)
	s := fmt.Sprintf("bat %.0f%% odo %.2fm", v["battery"], v["odometry"])
	if !r.armed {
		s += " disarmed"
	}
	if r.motion != nil {
		s += " " + r.motion.verb + "…"
	}
	return s
}

// ---- envsensor ----

type envSensor struct {
	rng                      *rand.Rand
	temp, hum, pres          float64
	tempBase, humBase, pBase float64
	offset                   float64
	interval                 time.Duration
}

func newEnvSensor(rng *rand.Rand) *envSensor {
	e := &envSensor{rng: rng}
	e.tempBase = round(20+rng.Float64()*4, 2)
	e.humBase = round(35+rng.Float64()*20, 1)
	e.pBase = round(1005+rng.Float64()*15, 1)
	e.temp, e.hum, e.pres = e.tempBase, e.humBase, e.pBase
	return e
}

func (e *envSensor) interrupts(string) bool { return false }

func (e *envSensor) period() time.Duration { return e.interval }

func (e *envSensor) begin(verb string, args map[string]any, now time.Time) action {
	switch verb {
	case "read":
		return action{run: 30 * time.Millisecond, finish: func(now time.Time, _ string) outcome {
			return done(e.peek(now))
		}}
	case "set_interval":
		n := argInt(args, "interval")
		e.interval = time.Duration(n) * time.Second
		return action{outcome: done(map[string]any{"interval": n})}
	case "calibrate":
		e.offset = argFloat(args, "offset")
		return action{outcome: done(map[string]any{"offset": e.offset, "temp": round(e.temp+e.offset, 2)})}
	}
	return action{outcome: failed(wire.ReplyUnknownVerb, "envsensor does not implement %q", verb)}
}

func (e *envSensor) sample(now time.Time) map[string]any {
	e.temp += (e.tempBase-e.temp)*0.1 + e.rng.NormFloat64()*0.05
	e.hum = clamp(e.hum+(e.humBase-e.hum)*0.1+e.rng.NormFloat64()*0.3, 0, 100)
	e.pres += (e.pBase-e.pres)*0.1 + e.rng.NormFloat64()*0.1
	return e.peek(now)
}

func (e *envSensor) peek(time.Time) map[string]any {
	return map[string]any{
		"temp":     round(e.temp+e.offset, 2),
		"humidity": round(e.hum, 1),
		"pressure": round(e.pres, 2),
	}
}

func (e *envSensor) set(field string, v float64) error {
	switch field {
	case "temp":
		e.temp, e.tempBase = v-e.offset, v-e.offset
	case "humidity":
		e.hum, e.humBase = clamp(v, 0, 100), clamp(v, 0, 100)
	case "pressure":
		e.pres, e.pBase = v, v
	default:
		return fmt.Errorf("envsensor has no field %q (temp, humidity, pressure)", field)
	}
	return nil
}

func (e *envSensor) summary(now time.Time) string {
	v := e.peek(now)
	return fmt.Sprintf("%.1f°C %.0f%% %.0fhPa", v["temp"], v["humidity"], v["pressure"])
}

// ---- relay ----

const relayChannels = 8

type relay struct {
	rng   *rand.Rand
	ch    [relayChannels]bool
	load  [relayChannels]float64 // A drawn by each closed channel
	extra float64                // forced extra load (Set current)
}

func newRelay(rng *rand.Rand) *relay {
	r := &relay{rng: rng}
	for i := range r.load {
		r.load[i] = round(0.2+rng.Float64()*1.8, 2)
	}
	return r
}

func (r *relay) interrupts(string) bool { return false }

func (r *relay) period() time.Duration { return 0 }

func (r *relay) begin(verb string, args map[string]any, now time.Time) action {
	n := argInt(args, "channel")
	if n < 1 || n > relayChannels {
		return action{outcome: failed(wire.ReplyBadArgument, "channel %d: want 1..%d", n, relayChannels)}
	}
	i := n - 1
	state := func() outcome { return done(map[string]any{"channel": n, "state": r.ch[i]}) }
	switch verb {
	case "on", "off", "toggle":
		return action{run: 20 * time.Millisecond, exclusive: true, finish: func(_ time.Time, interrupted string) outcome {
			if interrupted != "" {
				return failed(wire.ReplyInternal, "switching interrupted by %s", interrupted)
			}
			switch verb {
			case "on":
				r.ch[i] = true
			case "off":
				r.ch[i] = false
			default:
				r.ch[i] = !r.ch[i]
			}
			return state()
		}}
	case "pulse":
		r.ch[i] = true
		run := time.Duration(argInt(args, "duration")) * time.Millisecond
		return action{run: run, exclusive: true, finish: func(_ time.Time, interrupted string) outcome {
			r.ch[i] = false
			if interrupted != "" {
				return failed(wire.ReplyInternal, "pulse interrupted by %s", interrupted)
			}
			return state()
		}}
	}
	return action{outcome: failed(wire.ReplyUnknownVerb, "relay does not implement %q", verb)}
}

func (r *relay) current() float64 {
	sum := r.extra
	for i, on := range r.ch {
		if on {
			sum += r.load[i]
		}
	}
	return sum
}

func (r *relay) sample(now time.Time) map[string]any {
	v := r.peek(now)
	noise := r.rng.NormFloat64() * 0.01
	v["current"] = round(math.Max(0, r.current()+noise), 3)
	return v
}

func (r *relay) peek(time.Time) map[string]any {
	v := make(map[string]any, relayChannels+1)
	for i, on := range r.ch {
		v["ch"+strconv.Itoa(i+1)] = on
	}
	v["current"] = round(math.Max(0, r.current()), 3)
	return v
}

func (r *relay) set(field string, v float64) error {
	if field == "current" {
		r.extra = v - (r.current() - r.extra)
		return nil
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(field, "ch")); err == nil && strings.HasPrefix(field, "ch") && n >= 1 && n <= relayChannels {
		r.ch[n-1] = v != 0
		return nil
	}
	return fmt.Errorf("relay has no field %q (ch1..ch8, current)", field)
}

func (r *relay) summary(time.Time) string {
	var b strings.Builder
	for i, on := range r.ch {
		if on {
			b.WriteByte(byte('1' + i))
		} else {
			b.WriteByte('.')
		}
	}
	return fmt.Sprintf("%s %.2fA", b.String(), r.current())
}

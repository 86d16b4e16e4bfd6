package broker

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-edge/outpost/bridge/route"
)

// User is an account sensors connect with.
type User struct {
	Username     string
	PasswordHash []byte   // bcrypt
	Publish      []string // topic filters the user may publish to
	Subscribe    []string // topic filters the user may subscribe to
}

// Auth decides who may connect and what they may publish and subscribe to.
type Auth struct {
	// Anonymous lets clients without a username connect, publish and
	// subscribe anywhere.
	Anonymous bool
	Users     []User
}

type authHook struct {
	mqtt.HookBase
	b     *Broker
	state atomic.Pointer[authState]
}

// authState is one generation of the rules; a reload swaps in a new one.
type authState struct {
	auth *Auth
	by   map[string]*User
	mu   sync.Mutex
	ok   map[[sha256.Size]byte]bool // sha256(user, hash, password) of logins already verified
}

func (h *authHook) set(a *Auth) {
	st := &authState{auth: a, by: make(map[string]*User, len(a.Users))}
	for i := range a.Users {
		st.by[a.Users[i].Username] = &a.Users[i]
	}
	h.state.Store(st)
}

func (h *authHook) ID() string { return "outpost-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	st := h.state.Load()
	u, ok := h.login(st, cl, pk)
	if !ok {
		return false
	}
	// mochi publishes and retains a will without asking OnACLCheck: it is a
	// publish the client makes by going away, so it must be one the client
	// may make. Refusing the login tells the operator, where dropping the
	// will would not.
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 1 && !mayWill(u, cl.Properties.Will.TopicName) {
		h.b.log.Warn("login refused: will topic not allowed", "user", string(cl.Properties.Username),
			"topic", cl.Properties.Will.TopicName, "remote", cl.Net.Remote)
		refuseConnect(cl)
		return false
	}
	return true
}

// login checks the client's credentials. u is nil for an anonymous client.
func (h *authHook) login(st *authState, cl *mqtt.Client, pk packets.Packet) (u *User, ok bool) {
	if len(cl.Properties.Username) == 0 {
		if !st.auth.Anonymous {
			h.b.log.Warn("login refused: anonymous clients are not allowed", "remote", cl.Net.Remote)
		}
		return nil, st.auth.Anonymous
	}
	u = st.by[string(cl.Properties.Username)]
	if u == nil {
		h.b.log.Warn("login refused: unknown user", "user", string(cl.Properties.Username), "remote", cl.Net.Remote)
		return nil, false
	}
	// bcrypt costs most of a second on a small board: remember logins that
	// passed, so that a fleet of sensors reconnecting costs it once each.
	key := sha256.Sum256(bytes.Join([][]byte{[]byte(u.Username), u.PasswordHash, pk.Connect.Password}, []byte{0}))
	st.mu.Lock()
	ok = st.ok[key]
	st.mu.Unlock()
	if ok {
		return u, true
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, pk.Connect.Password) != nil {
		h.b.log.Warn("login refused: wrong password", "user", u.Username, "remote", cl.Net.Remote)
		return nil, false
	}
	st.mu.Lock()
	if st.ok == nil || len(st.ok) > 4096 {
		st.ok = make(map[[sha256.Size]byte]bool)
	}
	st.ok[key] = true
	st.mu.Unlock()
	return u, true
}

// mayWill reports whether a client logged in as u (nil: anonymous) may
// leave a will on topic: a topic it could publish to, by the checks a
// PUBLISH gets (mochi drops one to $SYS or with wildcards, then the ACL).
func mayWill(u *User, topic string) bool {
	return mqtt.IsValidFilter(topic, true) && (u == nil || u.mayPublish(topic))
}

// refuseConnect answers a CONNECT with "not authorized" (MQTT 5 0x87,
// 3.1.1 0x05) and closes the connection. mochi would answer the failed
// authentication with "bad username or password" (0x86); the client is
// stopped here, so that that second CONNACK is never written.
func refuseConnect(cl *mqtt.Client) {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: packets.ErrNotAuthorized.Code,
		Properties: packets.Properties{ReasonString: packets.ErrNotAuthorized.Reason}}
	if cl.Properties.ProtocolVersion < 5 {
		ack.ReasonCode, ack.Properties = packets.Err3NotAuthorized.Code, packets.Properties{}
	}
	_ = cl.WritePacket(ack)
	cl.Stop(packets.ErrNotAuthorized)
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	st := h.state.Load()
	var u *User
	if len(cl.Properties.Username) == 0 {
		if st.auth.Anonymous {
			return true
		}
	} else {
		u = st.by[string(cl.Properties.Username)]
	}
	if u == nil {
		// Anonymous, or a user a reload removed, while connected.
		if write {
			h.b.hook.droppedACL.Add(1)
			h.b.log.Warn("publish refused: the client is no longer allowed; message dropped", "client", cl.ID, "topic", topic)
		}
		return false
	}
	if write {
		if u.mayPublish(topic) {
			return true
		}
		h.b.hook.droppedACL.Add(1)
		h.b.log.Warn("publish refused by ACL; message dropped", "user", u.Username, "topic", topic)
		return false
	}
	for _, f := range u.Subscribe {
		if covers(f, topic) {
			return true
		}
	}
	return false
}

func (u *User) mayPublish(topic string) bool {
	for _, f := range u.Publish {
		if route.Match(f, topic) {
			return true
		}
	}
	return false
}

// covers reports whether every topic that filter want matches is also
// matched by the allowed filter: a subscription may narrow a grant, never
// widen it ("a/+" does not cover "a/#").
func covers(allowed, want string) bool {
	for {
		a, arest, amore := strings.Cut(allowed, "/")
		w, wrest, wmore := strings.Cut(want, "/")
		switch {
		case a == "#":
			return true
		case w == "#":
			return false
		case a != "+" && a != w:
			return false
		}
		switch {
		case !amore && !wmore:
			return true
		case !wmore:
			return arest == "#" // "a/#" covers "a"
		case !amore:
			return false
		}
		allowed, want = arest, wrest
	}
}

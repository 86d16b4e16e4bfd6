// Package brokertest is a minimal MQTT 3.1.1 / 5 client for tests that must
// see the exact packets a broker sends (reason codes, missing acks), which
// full client libraries hide. It writes and reads packets with mochi's codec.
package brokertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Client is a raw MQTT connection. It is not safe for concurrent writes.
type Client struct {
	Conn    net.Conn
	Version byte
	Connack packets.Packet // the server's answer to the CONNECT
	r       *bufio.Reader
}

// Options for Dial, Connect and ConnectPacket.
type Options struct {
	Version            byte // 4 (3.1.1, default) or 5
	ClientID           string
	Username, Password string
	Clean              bool
	// Keepalive in seconds: 0 means 60, a negative value sends 0 (none).
	Keepalive int
	// Will, when it has a topic, is sent as the client's last will.
	Will Will
}

// Will is a last will message.
type Will struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Dial connects and completes the CONNECT/CONNACK exchange. A refused
// connection returns the CONNACK's reason code as an error.
func Dial(addr string, o Options) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return Connect(conn, o)
}

// Connect completes the CONNECT/CONNACK exchange on conn, which it closes
// when that fails. A refused connection returns the CONNACK's reason code
// as an error.
func Connect(conn net.Conn, o Options) (*Client, error) {
	c := New(conn, o.Version)
	if err := c.Write(ConnectPacket(o)); err != nil {
		conn.Close()
		return nil, err
	}
	ack, err := c.Read(5 * time.Second)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading CONNACK: %w", err)
	}
	if ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("connection refused: packet type %d, reason 0x%02x", ack.FixedHeader.Type, ack.ReasonCode)
	}
	c.Connack = ack
	return c, nil
}

// New wraps conn without any exchange, for tests that send the CONNECT
// themselves (ConnectPacket) and read what follows.
func New(conn net.Conn, version byte) *Client {
	if version == 0 {
		version = 4
	}
	return &Client{Conn: conn, Version: version, r: bufio.NewReader(conn)}
}

// ConnectPacket is the CONNECT that Connect sends for o.
func ConnectPacket(o Options) packets.Packet {
	if o.Version == 0 {
		o.Version = 4
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.Version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: o.ClientID,
			Clean:            o.Clean,
			Keepalive:        60,
		},
	}
	switch {
	case o.Keepalive < 0:
		pk.Connect.Keepalive = 0
	case o.Keepalive > 0:
		pk.Connect.Keepalive = uint16(o.Keepalive)
	}
	if o.Will.Topic != "" {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, o.Will.Topic, o.Will.Payload
		pk.Connect.WillQos, pk.Connect.WillRetain = o.Will.QoS, o.Will.Retain
	}
	if o.Username != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(o.Username)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(o.Password)
	}
	return pk
}

// Publish sends a PUBLISH.
func (c *Client) Publish(id uint16, topic string, payload []byte, qos byte) error {
	return c.Write(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    id,
	})
}

// Write encodes and sends a packet.
func (c *Client) Write(pk packets.Packet) error {
	pk.ProtocolVersion = c.Version
	pk.Mods.AllowResponseInfo = true
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("brokertest: cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	_, err = c.Conn.Write(buf.Bytes())
	return err
}

// Read reads and decodes the next packet, waiting at most d.
func (c *Client) Read(d time.Duration) (packets.Packet, error) {
	c.Conn.SetReadDeadline(time.Now().Add(d))
	var pk packets.Packet
	pk.ProtocolVersion = c.Version
	hb, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

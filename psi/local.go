package psi

// Sender names the side that produced a message.
type Sender int

// Senders.
const (
	FromClient Sender = iota
	FromServer
)

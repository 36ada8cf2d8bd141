// Package sdnotify tells systemd (Type=notify) that the daemon is ready,
// through the datagram socket named by $NOTIFY_SOCKET.
package sdnotify

import (
	"net"
	"os"
	"strconv"
)

// Ready sends READY=1 and this process's PID (so that, after a
// zero-downtime upgrade, systemd follows the new process; the unit needs
// NotifyAccess=all). It does nothing when $NOTIFY_SOCKET is unset.
func Ready() error {
	return send("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()))
}

// Stopping tells systemd the daemon is shutting down.
func Stopping() error { return send("STOPPING=1") }

func send(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if name[0] == '@' { // abstract socket
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

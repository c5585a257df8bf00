package main

// FerretDB 1.x runs update, findAndModify and delete as "query, then write by _id" with nothing
// in between that re-checks the filter (upstream issue #3040), so two concurrent conditional
// updates of one document can both match and both write. MongoDB applies each single-document
// write atomically, and Stepline's protocol depends on that. This front restores it: clients talk
// to it over TCP, it forwards every message to FerretDB's Unix socket on a connection of its own,
// and it holds one process-wide mutex from forwarding a write command until its reply is back.
// Reads are not serialised; FerretDB's SQLite backend has a single writer anyway.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

const (
	opMsg            = 2013
	flagMoreToCome   = 1 << 1
	maxMessageLength = 48 << 20
)

var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findAndModify": true, "findandmodify": true,
}

var writeMu sync.Mutex

func serveFront(ctx context.Context, front net.Listener, sock string, logger *slog.Logger) {
	go func() { <-ctx.Done(); front.Close() }()
	for {
		client, err := front.Accept()
		if err != nil {
			return
		}
		go func() {
			defer client.Close()
			upstream, err := net.Dial("unix", sock)
			if err != nil {
				logger.Error("cannot reach FerretDB", "error", err)
				return
			}
			defer upstream.Close()
			if err := relay(client, upstream); err != nil && !errors.Is(err, io.EOF) {
				logger.Debug("connection ended", "error", err)
			}
		}()
	}
}

func readMessage(r io.Reader) ([]byte, error) {
	var header [16]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	n := int(binary.LittleEndian.Uint32(header[0:4]))
	if n < 16 || n > maxMessageLength {
		return nil, fmt.Errorf("bad message length %d", n)
	}
	msg := make([]byte, n)
	copy(msg, header[:])
	_, err := io.ReadFull(r, msg[16:])
	return msg, err
}

func opCode(msg []byte) uint32 { return binary.LittleEndian.Uint32(msg[12:16]) }

func moreToCome(msg []byte) bool {
	return opCode(msg) == opMsg && len(msg) >= 20 && binary.LittleEndian.Uint32(msg[16:20])&flagMoreToCome != 0
}

// commandName is the first key of an OP_MSG's body (kind 0) section, or "".
func commandName(msg []byte) string {
	if opCode(msg) != opMsg {
		return ""
	}
	for i := 20; i < len(msg); {
		kind := msg[i]
		if i+5 > len(msg) {
			return ""
		}
		size := int(binary.LittleEndian.Uint32(msg[i+1 : i+5]))
		if kind == 0 {
			start := i + 1 + 4 + 1 // section kind, document length, first element's type
			for end := start; end < len(msg) && end < i+1+size; end++ {
				if msg[end] == 0 {
					return string(msg[start:end])
				}
			}
			return ""
		}
		i += 1 + size
	}
	return ""
}

func relay(client, upstream net.Conn) error {
	for {
		msg, err := readMessage(client)
		if err != nil {
			return err
		}
		if err = exchange(client, upstream, msg, writeCommands[commandName(msg)]); err != nil {
			return err
		}
	}
}

func exchange(client, upstream net.Conn, msg []byte, write bool) error {
	if write {
		writeMu.Lock()
		defer writeMu.Unlock()
	}
	if _, err := upstream.Write(msg); err != nil {
		return err
	}
	if moreToCome(msg) {
		return nil
	}
	for {
		reply, err := readMessage(upstream)
		if err != nil {
			return err
		}
		if _, err = client.Write(reply); err != nil {
			return err
		}
		if !moreToCome(reply) {
			return nil
		}
	}
}

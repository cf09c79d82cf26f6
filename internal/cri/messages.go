package cri

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Container is a container as ListContainers reports it: only what knode
// reads.
type Container struct {
	ID   string
	Name string // its metadata's name (the pod spec's container name)
}

// containerRunning is runtime.v1.ContainerState CONTAINER_RUNNING.
const containerRunning = 1

// Field numbers in runtime.v1's api.proto.
const (
	listRequestFilter     = 1 // ListContainersRequest.filter
	filterState           = 2 // ContainerFilter.state
	filterLabelSelector   = 4 // ContainerFilter.label_selector (map<string, string>)
	stateValueState       = 1 // ContainerStateValue.state
	mapKey, mapValue      = 1, 2
	listResponseContainer = 1 // ListContainersResponse.containers
	containerID           = 1 // Container.id
	containerMetadata     = 3 // Container.metadata
	metadataName          = 1 // ContainerMetadata.name
	stopContainerID       = 1 // StopContainerRequest.container_id
	stopTimeout           = 2 // StopContainerRequest.timeout
)

// RunningContainers lists the running containers that carry every one of
// labels (the kubelet labels each container with its pod's namespace and
// name).
func (c *Client) RunningContainers(ctx context.Context, labels map[string]string) ([]Container, error) {
	var filter []byte
	state := protowire.AppendTag(nil, stateValueState, protowire.VarintType)
	state = protowire.AppendVarint(state, containerRunning)
	filter = appendMessage(filter, filterState, state)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // one encoding for one filter
	for _, k := range keys {
		var entry []byte
		entry = appendString(entry, mapKey, k)
		entry = appendString(entry, mapValue, labels[k])
		filter = appendMessage(filter, filterLabelSelector, entry)
	}
	resp, err := c.call(ctx, "ListContainers", appendMessage(nil, listRequestFilter, filter))
	if err != nil {
		return nil, err
	}
	var out []Container
	err = fields(resp, func(num protowire.Number, v []byte) error {
		if num != listResponseContainer {
			return nil
		}
		ctr, err := decodeContainer(v)
		out = append(out, ctr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("CRI ListContainers at %s: %w", c.socket, err)
	}
	return out, nil
}

// StopContainer stops container id, killing it after timeout seconds.
func (c *Client) StopContainer(ctx context.Context, id string, timeout int64) error {
	req := appendString(nil, stopContainerID, id)
	req = protowire.AppendTag(req, stopTimeout, protowire.VarintType)
	req = protowire.AppendVarint(req, uint64(timeout))
	_, err := c.call(ctx, "StopContainer", req)
	return err
}

func decodeContainer(b []byte) (Container, error) {
	var ctr Container
	err := fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case containerID:
			ctr.ID = string(v)
		case containerMetadata:
			return fields(v, func(num protowire.Number, v []byte) error {
				if num == metadataName {
					ctr.Name = string(v)
				}
				return nil
			})
		}
		return nil
	})
	if err == nil && ctr.ID == "" {
		err = fmt.Errorf("a container without an id")
	}
	return ctr, err
}

// fields calls f with each length-delimited field of message b (strings,
// bytes, messages), skipping the others; malformed input is an error.
func fields(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("malformed message: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("malformed field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("malformed field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, v); err != nil {
			return err
		}
	}
	return nil
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jailkeeper/jailkeeper/agent"
	"github.com/jailkeeper/jailkeeper/internal/redact"
	"github.com/jailkeeper/jailkeeper/release"
)

// newSuspendCmd is `jailkeeper suspend SERVICE`: the running agent keeps
// the service's live release and changes nothing of it until resume.
func newSuspendCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "suspend SERVICE",
		Short: "Freeze a service: keep its live release, deploy, roll back and prune nothing until resume",
		Args:  cobra.ExactArgs(1),
	}
	cfgPath := configFlag(c)
	socket := c.Flags().String("socket", "", "the agent's control socket (default: control_socket from the config)")
	reason := c.Flags().String("reason", "", "why, shown by status")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		svc := args[0]
		if err := release.ValidService(svc); err != nil {
			return invalid(err)
		}
		if len(*reason) > agent.MaxSuspendReason {
			return invalid(fmt.Errorf("--reason: more than %d bytes", agent.MaxSuspendReason))
		}
		path, err := controlSocket(*cfgPath, *socket)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(agent.SuspendRequest{Reason: *reason})
		var reply agent.ControlReply
		if err := controlDo(cmd.Context(), path, "/suspend/"+svc, body, &reply); err != nil {
			return err
		}
		p := redact.Printable
		since := ""
		if reply.Since != nil {
			since = reply.Since.String()
		}
		if reply.Changed {
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s; its live release stays, nothing changes until `jailkeeper resume %s`\n", p(svc), p(since), p(svc))
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%s was already %s\n", p(svc), p(since))
		}
		return nil
	}
	return c
}

// newResumeCmd is `jailkeeper resume SERVICE`.
func newResumeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "resume SERVICE",
		Short: "Undo suspend: the agent converges the service to the deploy repo again",
		Args:  cobra.ExactArgs(1),
	}
	cfgPath := configFlag(c)
	socket := c.Flags().String("socket", "", "the agent's control socket (default: control_socket from the config)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		svc := args[0]
		if err := release.ValidService(svc); err != nil {
			return invalid(err)
		}
		path, err := controlSocket(*cfgPath, *socket)
		if err != nil {
			return err
		}
		var reply agent.ControlReply
		if err := controlDo(cmd.Context(), path, "/resume/"+svc, nil, &reply); err != nil {
			return err
		}
		if reply.Changed {
			fmt.Fprintf(cmd.OutOrStdout(), "%s resumed; a pass now converges it to the deploy repo\n", svc)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%s was not suspended\n", svc)
		}
		return nil
	}
	return c
}

// controlSocket is the agent's control socket: socket, else the config's.
func controlSocket(cfgPath, socket string) (string, error) {
	if socket != "" {
		return socket, nil
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return "", err
	}
	return cfg.ControlSocket, nil
}

// controlDo POSTs body to the agent's control socket at path and decodes
// a 2xx answer into reply; any other status is an error with its text.
func controlDo(ctx context.Context, socket, path string, body []byte, reply any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://jailkeeper"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("is the agent running, and are you root? %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("%s: %s", redact.Printable(resp.Status), redact.Printable(strings.TrimSpace(string(b))))
		if resp.StatusCode == http.StatusBadRequest {
			return invalid(err)
		}
		return err
	}
	return json.Unmarshal(b, reply)
}

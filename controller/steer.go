package controller

import (
	"fmt"

	"github.com/ipcluster/ipcluster/wire"
)

// steer accepts a steering request: it goes to each target as it came,
// and, unless it is a status request, its step is agreed among them (see
// agreements).
func (c *core) steer(rid string, m *wire.Message, raw wire.Raw) {
	if !c.acceptable(rid, m) || !c.checkTargets(rid, m) {
		return
	}
	req, err := wire.DecodeSteer(m)
	if err != nil {
		c.replyError(rid, m.ID, errBadRequest, err.Error())
		return
	}
	c.sendDirect(rid, m, raw, func(eng *engineState, t *task) { eng.steering = append(eng.steering, t) })
	if req.Op.Agreed() {
		c.agree.add(m.ID, m.Targets)
	}
}

// steerAck takes an engine's horizon for a steering request.
func (c *core) steerAck(eng *engineState, m *wire.Message) {
	var ack wire.SteerAckContent
	if err := wire.DecodeContent(m, &ack); err != nil {
		c.replyEngineError(eng.rid, m.ID, errProtocol, err.Error())
		return
	}
	c.sendCommits(c.agree.ack(m.Parent, eng.info.ID, ack.Horizon))
}

// steerReplied notes an engine's answer to a steering request. An error
// before the step was agreed (the engine does not steer, say) cancels the
// request on its other engines, which answer that it was cancelled.
func (c *core) steerReplied(eng *engineState, t *task, m *wire.Message) {
	eng.steering = removeTask(eng.steering, t)
	if m.Status != wire.StatusError || !c.agree.pending(t.key.id) {
		return
	}
	var info wire.ErrorInfo
	if err := wire.DecodeContent(m, &info); err != nil {
		info.Message = "an error the controller could not read"
	}
	engines, commits := c.agree.cancel(t.key.id)
	why := fmt.Sprintf("cancelled on every engine: engine %d refused it: %s", eng.info.ID, info.Message)
	c.cancelSteer(t.key.id, engines, eng.info.ID, why)
	c.sendCommits(commits)
}

// steerEngineGone cancels the steering requests not yet agreed that name
// an engine that died or left.
func (c *core) steerEngineGone(id int, event string) {
	dropped, commits := c.agree.removeEngine(id)
	for _, ag := range dropped {
		c.cancelSteer(ag.id, ag.engines, id, fmt.Sprintf("cancelled on every engine: engine %d %s before the step was agreed", id, event))
	}
	c.sendCommits(commits)
}

// cancelSteer tells the engines of request id, but skip, that it is
// cancelled.
func (c *core) cancelSteer(id string, engines []int, skip int, why string) {
	for _, e := range engines {
		if eng := c.engines[e]; eng != nil && e != skip {
			c.sendEngine(eng, wire.SteerCommit, id, wire.SteerCommitContent{Cancel: why})
		}
	}
}

// sendCommits tells engines the agreed steps.
func (c *core) sendCommits(commits []commit) {
	for _, cm := range commits {
		for _, e := range cm.engines {
			if eng := c.engines[e]; eng != nil {
				c.sendEngine(eng, wire.SteerCommit, cm.id, wire.SteerCommitContent{At: cm.at})
			}
		}
	}
}

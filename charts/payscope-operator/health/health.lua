-- Argo CD health check for payscope.io/PayScopeDeployment.
--
-- Install it in argocd-cm under
--   resource.customizations.health.payscope.io_PayScopeDeployment
-- It decides on condition type, status and reason only, never on message text
-- (messages are for people and may change; reasons are a stable API), in this order:
--   no status yet, or status.observedGeneration < metadata.generation -> Progressing
--   Ready=False with reason Paused (annotation payscope.io/paused)    -> Suspended
--   Stalled=True (retrying cannot help)                                -> Degraded
--   Reconciling=True                                                   -> Progressing
--   Ready=True                                                         -> Healthy
--   a dimension condition (InfrastructureReady ... SecurityReady) False -> Degraded
--   Ready=False for any other reason                                   -> Degraded
--     (e.g. DimensionsNotConfigured: a whole dimension is not audited and no waiver accepts
--      that; declaring more of the spec or a "D.*" waiver fixes it, waiting does not)
--   Ready Unknown or absent (audit pending, probes could not run)      -> Progressing

local DIMENSIONS = {
  "InfrastructureReady", "DataLayerReady", "PipelineReady", "AgentsReady",
  "APIsReady", "ObservabilityReady", "SecurityReady",
}

local function describe(condition)
  local reason = condition.reason
  if reason == nil or reason == "" then
    reason = "NoReason"
  end
  return condition.type .. "=" .. tostring(condition.status) .. " (" .. reason .. ")"
end

local function health(obj)
  local meta = obj.metadata or {}
  local status = obj.status
  if status == nil or status.conditions == nil or #status.conditions == 0 then
    return { status = "Progressing", message = "Waiting for the operator to report conditions" }
  end

  local generation = tonumber(meta.generation)
  local observed = tonumber(status.observedGeneration)
  if generation ~= nil and (observed == nil or observed < generation) then
    return {
      status = "Progressing",
      message = "Waiting for the operator to observe generation " .. tostring(generation),
    }
  end

  local byType = {}
  for _, condition in ipairs(status.conditions) do
    if condition.type ~= nil then
      byType[condition.type] = condition
    end
  end
  local ready = byType["Ready"]

  if ready ~= nil and ready.status == "False" and ready.reason == "Paused" then
    return { status = "Suspended", message = describe(ready) }
  end

  local stalled = byType["Stalled"]
  if stalled ~= nil and stalled.status == "True" then
    return { status = "Degraded", message = describe(stalled) }
  end

  local reconciling = byType["Reconciling"]
  if reconciling ~= nil and reconciling.status == "True" then
    return { status = "Progressing", message = describe(reconciling) }
  end

  if ready ~= nil and ready.status == "True" then
    return { status = "Healthy", message = describe(ready) }
  end

  local failing = {}
  for _, dimension in ipairs(DIMENSIONS) do
    local condition = byType[dimension]
    if condition ~= nil and condition.status == "False" then
      table.insert(failing, describe(condition))
    end
  end
  if #failing > 0 then
    return { status = "Degraded", message = table.concat(failing, ", ") }
  end

  if ready ~= nil and ready.status == "False" then
    return { status = "Degraded", message = describe(ready) }
  end

  if ready ~= nil then
    return { status = "Progressing", message = describe(ready) }
  end
  return { status = "Progressing", message = "Waiting for the Ready condition" }
end

return health(obj)

-- Argo CD health check for compose-operator.io/ComposeApp.
--
-- Reads the kstatus-style status the operator writes: top-level observedGeneration and the
-- conditions Ready, Reconciling and Stalled, each carrying its own observedGeneration.
-- Written for Lua 5.1 (Argo CD runs gopher-lua). Precedence, first match wins:
--   1. spec.suspend               -> Suspended (the operator leaves a suspended app alone,
--                                    so nothing else in its status is current)
--   2. being deleted, no status yet, status.observedGeneration behind metadata.generation,
--      or Reconciling=True       -> Progressing
--   3. Stalled=True               -> Degraded (retrying cannot help: fail fast)
--   4. Ready=True                 -> Healthy
--   5. anything else              -> Progressing (e.g. Ready=False while models load)

local hs = {}

-- A condition counts only when it speaks about the current generation.
local function current_condition(obj, condition_type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == condition_type then
      if condition.observedGeneration ~= nil and obj.metadata.generation ~= nil
          and condition.observedGeneration ~= obj.metadata.generation then
        return nil
      end
      return condition
    end
  end
  return nil
end

local function is_true(condition)
  return condition ~= nil and condition.status == "True"
end

local function message_of(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: spec.suspend is true, the operator does not reconcile this app"
  return hs
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  return hs
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile this app"
  return hs
end

if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
    .. " (status is for generation " .. obj.status.observedGeneration .. ")"
  return hs
end

local ready = current_condition(obj, "Ready")
local reconciling = current_condition(obj, "Reconciling")
local stalled = current_condition(obj, "Stalled")

if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = message_of(reconciling, message_of(ready, "Reconciling"))
  return hs
end

if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = message_of(stalled, message_of(ready, "Stalled"))
  return hs
end

if is_true(ready) then
  hs.status = "Healthy"
  hs.message = message_of(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, "Waiting for the Ready condition")
return hs

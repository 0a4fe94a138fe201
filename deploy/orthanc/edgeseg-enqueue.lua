-- EdgeSeg batch segmentation: tell the EdgeSeg edge server about every new study once it is stable.
--
-- In Orthanc's configuration (1.10 or later):
--   "LuaScripts": ["/etc/orthanc/edgeseg-settings.lua", "/usr/share/edgeseg/edgeseg-enqueue.lua"],
--   "StableAge": 60
-- where edgeseg-settings.lua sets the three values below (or leave them out and set the environment
-- variables of the same name for the Orthanc service):
--   EDGESEG_ENQUEUE_URL   = "http://edgeseg.internal:8042/edgeseg/enqueue"
--   EDGESEG_ENQUEUE_TOKEN = "<the token given to deno task start --enqueue-token>"
--   EDGESEG_ENQUEUE_MODEL = "ct-lung-infection"
--   EDGESEG_MODALITIES    = "CT"          -- optional: only studies with one of these (comma-separated)
--
-- The server queues one job per (study, model): when our own SEG and Parametric Map arrive in the
-- study, Orthanc calls this again, and that second request changes nothing. A failed request is
-- logged by Orthanc and not retried here: `deno task enqueue --query …` catches up on anything missed.

EDGESEG_ENQUEUE_URL = EDGESEG_ENQUEUE_URL or os.getenv("EDGESEG_ENQUEUE_URL")
EDGESEG_ENQUEUE_TOKEN = EDGESEG_ENQUEUE_TOKEN or os.getenv("EDGESEG_ENQUEUE_TOKEN")
EDGESEG_ENQUEUE_MODEL = EDGESEG_ENQUEUE_MODEL or os.getenv("EDGESEG_ENQUEUE_MODEL")
EDGESEG_MODALITIES = EDGESEG_MODALITIES or os.getenv("EDGESEG_MODALITIES")

if not EDGESEG_ENQUEUE_URL or not EDGESEG_ENQUEUE_TOKEN then
  print("edgeseg-enqueue.lua: EDGESEG_ENQUEUE_URL and EDGESEG_ENQUEUE_TOKEN are not set; no study will be queued")
end

-- True when the study has a series of one of the wanted modalities (all, when none are configured).
local function WantedStudy(studyId)
  if not EDGESEG_MODALITIES or EDGESEG_MODALITIES == "" then
    return true
  end
  local series = ParseJson(RestApiGet("/studies/" .. studyId .. "/series"))
  for _, s in ipairs(series) do
    local m = s["MainDicomTags"]["Modality"]
    if m and string.find("," .. EDGESEG_MODALITIES .. ",", "," .. m .. ",", 1, true) then
      return true
    end
  end
  return false
end

function OnStableStudy(studyId, tags, metadata)
  if not EDGESEG_ENQUEUE_URL or not EDGESEG_ENQUEUE_TOKEN then
    return
  end
  local uid = tags["StudyInstanceUID"]
  if not uid or not WantedStudy(studyId) then
    return
  end
  local body = { study = uid, source = "orthanc" }
  if EDGESEG_ENQUEUE_MODEL and EDGESEG_ENQUEUE_MODEL ~= "" then
    body["model"] = EDGESEG_ENQUEUE_MODEL
  end
  local headers = {
    ["Authorization"] = "Bearer " .. EDGESEG_ENQUEUE_TOKEN,
    ["Content-Type"] = "application/json",
  }
  -- HttpPost returns nil when the request fails (Orthanc logs the HTTP error).
  local answer = HttpPost(EDGESEG_ENQUEUE_URL, DumpJson(body, true), headers)
  if answer == nil then
    print("edgeseg-enqueue.lua: could not queue study " .. uid .. " at " .. EDGESEG_ENQUEUE_URL)
  end
end

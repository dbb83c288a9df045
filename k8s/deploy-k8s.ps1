<#
.SYNOPSIS
    Deploy Tradewind to Kubernetes with kustomize (the same as deploy-k8s.sh).
.DESCRIPTION
    Checks prerequisites, renders the overlay with the image you name, names
    the cluster and context and asks to confirm (-Yes skips the question),
    checks that the required Secrets exist, applies with a server-side dry run
    first, waits for every rollout, and rolls back the Deployments this
    release changed if one does not become ready.
    -DryRun renders and prints the plan; it needs no cluster. -WhatIf runs the
    checks and the server-side dry run and names every change without making it.
    -Timeout takes a unit (300s, 5m, 1h); a bare number means seconds.
    prod with -Tag needs -Registry. -Grouped deploys overlays/<overlay>-grouped:
    signal, risk and execution in one Deployment (orderpath,
    k8s/components/grouped-order-path) instead of three.
    Exit codes: 0 deployed, 1 failed (cluster, apply, rollout), 2 usage,
    3 not confirmed (answered no, or no terminal and no -Yes).
    Written for Windows PowerShell 5.1 and PowerShell 7: kubectl's stderr never
    stops the script; its exit code decides.
.EXAMPLE
    ./deploy-k8s.ps1 -Overlay prod -Registry ghcr.io/acme -Tag 1.2.3 -DryRun
#>
[CmdletBinding(SupportsShouldProcess = $true, PositionalBinding = $false)]
param(
    [string]$Overlay = 'dev',
    [string]$Registry = '',
    [string]$Tag = '',
    [switch]$DryRun,
    [switch]$Grouped,
    [string]$Timeout = '300s',
    [string]$Context = '',
    [switch]$NoRollback,
    [switch]$Yes,
    # Anything else is a usage error (exit 2), as in the bash script.
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$Unknown = @()
)

$ErrorActionPreference = 'Stop'
# PowerShell 7.3+: a failing native command must not throw (the exit code is checked).
$PSNativeCommandUseErrorActionPreference = $false
Set-StrictMode -Version Latest

$Namespace = 'tradewind'
$Selector = 'app.kubernetes.io/part-of=tradewind'
$RequiredSecrets = @('tradewind-postgres', 'tradewind-control', 'tradewind-exchange', 'tradewind-grafana',
    'tradewind-redis-acl', 'tradewind-redis-ws', 'tradewind-redis-signal', 'tradewind-redis-risk',
    'tradewind-redis-execution', 'tradewind-redis-db-writer')
$Revisions = 'custom-columns=NAME:.metadata.name,REVISION:.metadata.annotations.deployment\.kubernetes\.io/revision'
$Here = $PSScriptRoot
$Script:Cmdlet = $PSCmdlet

function Write-Err([string]$Message) { [Console]::Error.WriteLine($Message) }
function Stop-WithError([string]$Message) { Write-Err "error: $Message"; exit 1 }
function Stop-WithUsage([string]$Message) { Write-Err "error: $Message"; exit 2 }
function Write-Log([string]$Message) { Write-Host "==> $Message" }

$ContextName = if ($Context) { $Context } else { 'the current context' }

# Every kubectl call goes through Invoke-Kubectl, so -Context applies to all of
# them. kubectl runs as a native command with stderr captured as text: no
# stderr line becomes a terminating error (PowerShell 5.1-7.1 with 'Stop'),
# and the exit code, not the stream, decides. A simple function (no param
# block), so that kubectl flags such as -n pass through.
function Invoke-Kubectl {
    $kubectlArgs = @($args)
    if ($Context) { $kubectlArgs = @('--context', $Context) + $kubectlArgs }
    $ErrorActionPreference = 'Continue'
    $PSNativeCommandUseErrorActionPreference = $false
    $all = @(& kubectl @kubectlArgs 2>&1)
    $code = $LASTEXITCODE
    $out = @($all | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] } | ForEach-Object { "$_" })
    $err = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] } | ForEach-Object { "$_" })
    return [pscustomobject]@{ Code = $code; Out = $out; Err = $err }
}

# The check of k8s/base/sync-files.sh --check: every copy in base/files equals its source.
function Test-FilesFresh {
    $root = Split-Path -Parent $Here
    $files = Join-Path $Here 'base/files'
    $pairs = @(
        @('infrastructure/monitoring/grafana/provisioning/datasources/prometheus.yml', 'grafana-datasource.yml'),
        @('infrastructure/monitoring/grafana/provisioning/dashboards/tradewind.yml', 'grafana-dashboard-provider.yml')
    )
    if (Test-Path (Join-Path $root 'src/tradewind/storage/schema.sql')) {
        $pairs += , @('src/tradewind/storage/schema.sql', 'schema.sql')
    }
    foreach ($dir in @(@('infrastructure/monitoring/prometheus/rules', 'rules', '*.yml'), @('infrastructure/monitoring/grafana/dashboards', 'dashboards', '*.json'))) {
        $sources = @(Get-ChildItem -Path (Join-Path $root $dir[0]) -Filter $dir[2] -File)
        $copies = @(Get-ChildItem -Path (Join-Path $files $dir[1]) -File)
        if ($sources.Count -ne $copies.Count) { return $false }
        foreach ($f in $sources) { $pairs += , @("$($dir[0])/$($f.Name)", "$($dir[1])/$($f.Name)") }
    }
    foreach ($p in $pairs) {
        $copy = Join-Path $files $p[1]
        if (-not (Test-Path $copy)) { return $false }
        if ((Get-FileHash (Join-Path $root $p[0])).Hash -ne (Get-FileHash $copy).Hash) { return $false }
    }
    return $true
}

function Show-Result($Result) {
    $Result.Out | ForEach-Object { Write-Host $_ }
    $Result.Err | ForEach-Object { Write-Err $_ }
}

function Confirm-Step([string]$Question) {
    if ($Yes -or $WhatIfPreference) { return }
    if ([Console]::IsInputRedirected) {
        Write-Err "no terminal to confirm '$Question'; pass -Yes to confirm"
        exit 3
    }
    $answer = Read-Host "$Question [y/N]"
    if (-not ($answer -eq 'y' -or $answer -eq 'Y' -or $answer -eq 'yes')) {
        Write-Err 'not confirmed: nothing more is done'
        exit 3
    }
}

if ($Unknown.Count -gt 0) { Stop-WithUsage "unknown option: $($Unknown -join ' ')" }
if ($Overlay -notin @('dev', 'prod')) { Stop-WithUsage "-Overlay must be dev or prod, not '$Overlay'" }
if ($Timeout -match '^[0-9]+$') { $Timeout = "${Timeout}s" }
if ($Timeout -notmatch '^([0-9]+h)?([0-9]+m)?([0-9]+s)?$' -or $Timeout -eq '' -or $Timeout -notmatch '[1-9]') {
    Stop-WithUsage "-Timeout must be a positive duration such as 300s, 5m or 1h, not '$Timeout'"
}
if ($Overlay -eq 'prod' -and $Tag -and -not $Registry) {
    Stop-WithUsage "-Overlay prod -Tag $Tag needs -Registry (without it the image would be docker.io/library/tradewind:$Tag)"
}
if ($Grouped) {
    # One Redis user for the grouped order path instead of three.
    $Overlay = "$Overlay-grouped"
    $RequiredSecrets = @('tradewind-postgres', 'tradewind-control', 'tradewind-exchange', 'tradewind-grafana',
        'tradewind-redis-acl', 'tradewind-redis-ws', 'tradewind-redis-orderpath', 'tradewind-redis-db-writer')
}

# --- prerequisites ---------------------------------------------------------------
if (-not (Get-Command kubectl -ErrorAction SilentlyContinue)) {
    Stop-WithError 'kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)'
}
$r = Invoke-Kubectl kustomize '--help'
if ($r.Code -ne 0) { Stop-WithError "this kubectl has no 'kustomize' subcommand; install kubectl >= 1.27" }
if (-not (Test-FilesFresh)) { Stop-WithError 'k8s/base/files is stale: run k8s/base/sync-files.sh' }

# --- render ------------------------------------------------------------------------
# kustomize takes only relative resource paths: the temporary kustomization
# lives in k8s/.render.* and is removed at the end.
$Work = Join-Path $Here (".render." + [guid]::NewGuid().ToString('N').Substring(0, 6))
$RenderDir = Join-Path $Work 'render'
New-Item -ItemType Directory -Path $RenderDir -Force | Out-Null
try {
    $lines = @(
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        "  - ../../overlays/$Overlay"
    )
    if ($Registry -or $Tag) {
        $imageName = 'tradewind'
        if ($Registry) { $imageName = $Registry.TrimEnd('/') + '/tradewind' }
        $lines += 'images:'
        foreach ($from in @('tradewind', 'registry.example.com/tradewind/tradewind')) {
            $lines += "  - name: $from"
            $lines += "    newName: $imageName"
            if ($Tag) { $lines += "    newTag: `"$Tag`"" }
        }
    }
    Set-Content -Path (Join-Path $RenderDir 'kustomization.yaml') -Value $lines -Encoding ascii
    $Manifest = Join-Path $Work 'manifest.yaml'
    $r = Invoke-Kubectl kustomize $RenderDir -o $Manifest
    if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "kustomize failed for overlay $Overlay" }
    $rendered = @(Get-Content -Path $Manifest -Encoding UTF8)

    # Kind/name of every rendered resource.
    $resources = @()
    $kind = ''
    $inMeta = $false
    foreach ($line in $rendered) {
        if ($line -like '---*') { $kind = ''; $inMeta = $false; continue }
        if ($line -match '^kind: (\S+)') { $kind = $Matches[1]; continue }
        if ($line -match '^metadata:') { $inMeta = $true; continue }
        if ($inMeta -and $line -match '^  name: (\S+)') { $resources += "$kind/$($Matches[1])"; $inMeta = $false; continue }
        if ($line -match '^[a-z]') { $inMeta = $false }
    }
    $images = @($rendered | Where-Object { $_ -match '^\s+image: ' } |
        ForEach-Object { ($_ -split 'image: ')[1].Trim() } | Sort-Object -Unique)
    $deployments = @($resources | Where-Object { $_ -like 'Deployment/*' } | ForEach-Object { $_.Substring(11) })
    $statefulSets = @($resources | Where-Object { $_ -like 'StatefulSet/*' } | ForEach-Object { $_.Substring(12) })

    if ($DryRun) {
        Write-Output 'Tradewind deployment plan (dry run: no cluster contacted)'
        Write-Output "  overlay:    $Overlay"
        Write-Output "  namespace:  $Namespace"
        Write-Output ("  context:    " + $(if ($Context) { $Context } else { '<current kubectl context>' }))
        Write-Output '  images:'
        $images | ForEach-Object { Write-Output "    $_" }
        Write-Output '  required Secrets (created beforehand, see k8s/SECRETS_GUIDE.md):'
        $RequiredSecrets | ForEach-Object { Write-Output "    $_" }
        Write-Output "  resources to apply ($($resources.Count)):"
        $resources | ForEach-Object { Write-Output "    $_" }
        Write-Output '  steps:'
        Write-Output '    1. name the cluster and context, confirm (-Yes skips the question)'
        Write-Output '    2. kubectl apply the Namespace, then check the required Secrets exist'
        Write-Output '    3. kubectl apply --dry-run=server, then kubectl apply -f <rendered manifest>'
        Write-Output "    4. kubectl rollout status for StatefulSets: $($statefulSets -join ' ')"
        Write-Output "    5. kubectl rollout status for Deployments: $($deployments -join ' ') (timeout $Timeout)"
        if ($NoRollback) { Write-Output '    6. on failure: no rollback (-NoRollback)' }
        else { Write-Output '    6. on failure: kubectl rollout undo for each Deployment this release changed' }
        exit 0
    }

    # --- cluster checks -----------------------------------------------------------
    Write-Log 'checking the cluster'
    $r = Invoke-Kubectl config view '--minify' -o 'jsonpath={.contexts[0].name} (cluster {.clusters[0].name} at {.clusters[0].cluster.server})'
    if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot read the kubectl configuration for $ContextName" }
    $target = ($r.Out -join '').Trim()
    if (-not $target) { Stop-WithError 'no kubectl context is set (pass -Context NAME)' }
    $r = Invoke-Kubectl version '--request-timeout=10s'
    if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot reach the cluster of context $target" }
    Confirm-Step "Deploy overlay $Overlay to namespace $Namespace on context ${target}?"
    if ($PSCmdlet.ShouldProcess("namespace $Namespace on context $target", 'kubectl apply')) {
        $r = Invoke-Kubectl apply -f (Join-Path $Here 'base/namespace.yaml')
        if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot apply the namespace $Namespace" }
    }
    $r = Invoke-Kubectl -n $Namespace get secret @RequiredSecrets -o name '--ignore-not-found'
    if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot look up the Secrets in ${Namespace}: nothing applied" }
    $missing = @($RequiredSecrets | Where-Object { $r.Out -notcontains "secret/$_" })
    if ($missing.Count -gt 0) {
        Write-Err "missing Secrets in namespace ${Namespace}: $($missing -join ' ')"
        Stop-WithError 'create them first (k8s/SECRETS_GUIDE.md, k8s/base/secrets.template.yaml)'
    }
    $r = Invoke-Kubectl -n $Namespace get deployment -l $Selector -o $Revisions '--no-headers'
    if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot read the current Deployments in ${Namespace}: nothing applied" }
    $before = @{}
    foreach ($line in $r.Out) { $f = -split $line; if ($f.Count -eq 2) { $before[$f[0]] = $f[1] } }

    # Roll back the Deployments whose revision this release moved (unchanged ones
    # and StatefulSets are left alone; Deployments it created are named).
    function Invoke-Rollback {
        if ($NoRollback) {
            Write-Err 'no rollback (-NoRollback): the release stays as applied'
            return
        }
        $r = Invoke-Kubectl -n $Namespace get deployment -l $Selector -o $Revisions '--no-headers'
        if ($r.Code -ne 0) { Show-Result $r; Write-Err 'cannot read the Deployments after the failure: nothing rolled back'; return }
        $undone = @()
        foreach ($line in $r.Out) {
            $f = -split $line
            if ($f.Count -ne 2) { continue }
            $name = $f[0]; $rev = $f[1]
            if (-not $before.ContainsKey($name)) {
                Write-Err "deployment/$name was created by this release: not rolled back (kubectl -n $Namespace delete deployment $name to remove it)"
            }
            elseif ($before[$name] -ne $rev) {
                if ($Script:Cmdlet.ShouldProcess("deployment/$name on context $target", 'kubectl rollout undo')) {
                    Write-Log "rolling back deployment/$name (revision $rev -> $($before[$name]))"
                    $u = Invoke-Kubectl -n $Namespace rollout undo "deployment/$name"
                    Show-Result $u
                    if ($u.Code -eq 0) { $undone += $name } else { Write-Err "rollback of deployment/$name failed" }
                }
            }
        }
        foreach ($name in $undone) {
            $w = Invoke-Kubectl -n $Namespace rollout status "deployment/$name" "--timeout=$Timeout"
            Show-Result $w
            if ($w.Code -ne 0) { Write-Err "deployment/$name is not ready after the rollback either" }
        }
    }

    # --- apply and wait -------------------------------------------------------------
    Write-Log "validating overlay $Overlay on the server (dry run)"
    $r = Invoke-Kubectl apply '--dry-run=server' -f $Manifest
    if ($r.Code -ne 0) { Show-Result $r; Stop-WithError 'the server rejected the manifest (see above): nothing applied' }
    if (-not $PSCmdlet.ShouldProcess("overlay $Overlay in namespace $Namespace on context $target", 'kubectl apply')) {
        Write-Output 'WhatIf: the server accepted the manifest; nothing was applied'
        exit 0
    }
    Write-Log "applying overlay $Overlay"
    $r = Invoke-Kubectl apply -f $Manifest
    Show-Result $r
    if ($r.Code -ne 0) {
        Write-Err 'kubectl apply failed midway: the objects listed above were applied, the rest were not'
        Invoke-Rollback
        Stop-WithError "deployment of overlay $Overlay failed during apply; fix the error above and run this again"
    }

    $failed = $false
    foreach ($s in $statefulSets) {
        Write-Log "waiting for statefulset/$s"
        $r = Invoke-Kubectl -n $Namespace rollout status "statefulset/$s" "--timeout=$Timeout"
        Show-Result $r
        if ($r.Code -ne 0) { $failed = $true }
    }
    foreach ($d in $deployments) {
        Write-Log "waiting for deployment/$d"
        $r = Invoke-Kubectl -n $Namespace rollout status "deployment/$d" "--timeout=$Timeout"
        Show-Result $r
        if ($r.Code -ne 0) { $failed = $true }
    }
    if ($failed) {
        Write-Err 'rollout failed'
        Invoke-Rollback
        Stop-WithError "deployment of overlay $Overlay failed; see 'kubectl -n $Namespace get pods' and k8s/README.md#troubleshooting-by-symptom"
    }
    # kubectl apply never deletes: after a switch of the order-path layout the
    # other layout's Deployments still run beside this one. Name them.
    $stale = @($before.Keys | Where-Object { $deployments -notcontains $_ } | Sort-Object)
    if ($stale.Count -gt 0) {
        Write-Err "still running but not part of overlay ${Overlay}: $($stale -join ' '); after a switch of the order-path layout remove them (k8s/README.md#the-grouped-order-path)"
    }
    Write-Log "Tradewind ($Overlay) is deployed and ready"
}
finally {
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

<#
.SYNOPSIS
    Deploy Tradewind to Kubernetes with kustomize (same options as deploy-k8s.sh).
.DESCRIPTION
    Checks prerequisites, renders the overlay with the image you name, checks
    that the required Secrets exist, applies, waits for every rollout, and
    rolls the Deployments back if one does not become ready.
    -DryRun renders and prints the plan; it needs no cluster.
.EXAMPLE
    ./deploy-k8s.ps1 -Overlay prod -Registry ghcr.io/acme -Tag 1.2.3 -DryRun
#>
[CmdletBinding()]
param(
    [ValidateSet('dev', 'prod')]
    [string]$Overlay = 'dev',
    [string]$Registry = '',
    [string]$Tag = '',
    [switch]$DryRun,
    [string]$Timeout = '300s',
    [string]$Context = '',
    [switch]$NoRollback
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$Namespace = 'tradewind'
$RequiredSecrets = @('tradewind-postgres', 'tradewind-control', 'tradewind-exchange', 'tradewind-grafana')
$Here = $PSScriptRoot

# A simple function (no param block), so that kubectl flags such as -n pass through.
function Invoke-Kubectl {
    $kubectlArgs = @($args)
    if ($Context) { $kubectlArgs = @('--context', $Context) + $kubectlArgs }
    & kubectl @kubectlArgs
}

function Stop-WithError([string]$Message) {
    Write-Error "error: $Message" -ErrorAction Continue
    exit 1
}

# --- prerequisites ---------------------------------------------------------------
if (-not (Get-Command kubectl -ErrorAction SilentlyContinue)) {
    Stop-WithError 'kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)'
}
& kubectl kustomize --help *> $null
if ($LASTEXITCODE -ne 0) { Stop-WithError "this kubectl has no 'kustomize' subcommand; install kubectl >= 1.27" }

# --- render ------------------------------------------------------------------------
# kustomize takes only relative resource paths: the temporary kustomization
# lives in k8s/.render-* and is removed at the end.
$Work = Join-Path $Here (".render-" + [guid]::NewGuid().ToString('N'))
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
    Set-Content -Path (Join-Path $RenderDir 'kustomization.yaml') -Value $lines -Encoding utf8
    $Manifest = Join-Path $Work 'manifest.yaml'
    & kubectl kustomize $RenderDir | Set-Content -Path $Manifest -Encoding utf8
    if ($LASTEXITCODE -ne 0) { Stop-WithError "kustomize failed for overlay $Overlay" }

    # Kind/name of every rendered resource.
    $resources = @()
    $kind = ''
    $inMeta = $false
    foreach ($line in Get-Content $Manifest) {
        if ($line -like '---*') { $kind = ''; $inMeta = $false; continue }
        if ($line -match '^kind: (\S+)') { $kind = $Matches[1]; continue }
        if ($line -match '^metadata:') { $inMeta = $true; continue }
        if ($inMeta -and $line -match '^  name: (\S+)') { $resources += "$kind/$($Matches[1])"; $inMeta = $false; continue }
        if ($line -match '^[a-z]') { $inMeta = $false }
    }
    $images = Get-Content $Manifest | Where-Object { $_ -match '^\s+image: ' } |
        ForEach-Object { ($_ -split 'image: ')[1].Trim() } | Sort-Object -Unique
    $deployments = $resources | Where-Object { $_ -like 'Deployment/*' } | ForEach-Object { $_.Substring(11) }
    $statefulSets = $resources | Where-Object { $_ -like 'StatefulSet/*' } | ForEach-Object { $_.Substring(12) }

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
        Write-Output '    1. kubectl apply the Namespace, then check the required Secrets exist'
        Write-Output '    2. kubectl apply -f <rendered manifest>'
        Write-Output "    3. kubectl rollout status for StatefulSets: $($statefulSets -join ' ')"
        Write-Output "    4. kubectl rollout status for Deployments: $($deployments -join ' ') (timeout $Timeout)"
        if ($NoRollback) { Write-Output '    5. on failure: no rollback (-NoRollback)' }
        else { Write-Output '    5. on failure: kubectl rollout undo for each Deployment that existed before' }
        exit 0
    }

    # --- cluster checks -----------------------------------------------------------
    Write-Output '==> checking the cluster'
    Invoke-Kubectl version '--request-timeout=10s' *> $null; if ($LASTEXITCODE -ne 0) {
        Stop-WithError "cannot reach the cluster (kubectl context: $Context)"
    }
    Invoke-Kubectl apply -f (Join-Path $Here 'base/namespace.yaml') | Out-Null
    $missing = @()
    foreach ($s in $RequiredSecrets) {
        & kubectl -n $Namespace get secret $s *> $null
        if ($LASTEXITCODE -ne 0) { $missing += $s }
    }
    if ($missing.Count -gt 0) {
        Stop-WithError "missing Secrets in namespace ${Namespace}: $($missing -join ', '); create them first (k8s/SECRETS_GUIDE.md)"
    }
    $previous = @()
    foreach ($d in $deployments) {
        & kubectl -n $Namespace get deployment $d *> $null
        if ($LASTEXITCODE -eq 0) { $previous += $d }
    }

    # --- apply and wait -------------------------------------------------------------
    Write-Output "==> applying overlay $Overlay"
    Invoke-Kubectl apply -f $Manifest; if ($LASTEXITCODE -ne 0) { Stop-WithError 'kubectl apply failed' }
    $failed = $false
    foreach ($s in $statefulSets) {
        Write-Output "==> waiting for statefulset/$s"
        Invoke-Kubectl -n $Namespace rollout status "statefulset/$s" "--timeout=$Timeout"; if ($LASTEXITCODE -ne 0) { $failed = $true }
    }
    foreach ($d in $deployments) {
        Write-Output "==> waiting for deployment/$d"
        Invoke-Kubectl -n $Namespace rollout status "deployment/$d" "--timeout=$Timeout"; if ($LASTEXITCODE -ne 0) { $failed = $true }
    }
    if ($failed) {
        if (-not $NoRollback) {
            foreach ($d in $previous) {
                Write-Output "==> rolling back deployment/$d"
                Invoke-Kubectl -n $Namespace rollout undo "deployment/$d" | Out-Null
            }
        }
        Stop-WithError "deployment of overlay $Overlay failed; see 'kubectl -n $Namespace get pods' and k8s/README.md"
    }
    Write-Output "==> Tradewind ($Overlay) is deployed and ready"
}
finally {
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

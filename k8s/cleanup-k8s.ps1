<#
.SYNOPSIS
    Remove Tradewind from a cluster (the same as cleanup-k8s.sh).
.DESCRIPTION
    Deletes the workloads, Services, ConfigMaps, autoscalers, budgets, policies
    and RBAC of the tradewind namespace. Data (the PersistentVolumeClaims of
    Redis, PostgreSQL and Prometheus) and the Secrets are kept unless you ask.
    Every deletion names the cluster and context and asks first (-Yes skips
    the questions). The namespace is deleted only with -DeleteData AND
    -DeleteSecrets (deleting it deletes everything in it, Secrets included).
    -WhatIf runs the queries and names every deletion without making it.
    Exit codes: 0 done, 1 failed (a query or deletion failed: nothing after it
    runs), 2 usage, 3 not confirmed (the steps before the question are done).
    Written for Windows PowerShell 5.1 and PowerShell 7: kubectl's stderr never
    stops the script; its exit code decides.
.EXAMPLE
    ./cleanup-k8s.ps1 -DeleteData
#>
[CmdletBinding(SupportsShouldProcess = $true, PositionalBinding = $false)]
param(
    [string]$Context = '',
    [switch]$DeleteData,
    [switch]$DeleteSecrets,
    [switch]$Yes,
    [switch]$DryRun,
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
$Kinds = 'deployment,statefulset,service,configmap,horizontalpodautoscaler,poddisruptionbudget,networkpolicy,serviceaccount,role,rolebinding,job'
# Both layouts' Secrets (the grouped order path has tradewind-redis-orderpath).
$Secrets = @('tradewind-postgres', 'tradewind-control', 'tradewind-exchange', 'tradewind-grafana',
    'tradewind-redis-acl', 'tradewind-redis-ws', 'tradewind-redis-signal', 'tradewind-redis-risk',
    'tradewind-redis-execution', 'tradewind-redis-db-writer', 'tradewind-redis-orderpath')

function Write-Err([string]$Message) { [Console]::Error.WriteLine($Message) }
function Stop-WithUsage([string]$Message) { Write-Err "error: $Message"; exit 2 }
function Stop-WithError([string]$Message) { Write-Err "error: $Message"; exit 1 }

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
if ($DryRun) {
    Write-Output 'Tradewind cleanup plan (dry run: no cluster contacted)'
    Write-Output "  1. after confirmation: kubectl -n $Namespace delete $Kinds -l $Selector"
    if ($DeleteSecrets) { Write-Output "  2. after confirmation: delete the Secrets $($Secrets -join ' ')" }
    else { Write-Output '  2. Secrets kept (-DeleteSecrets to remove them)' }
    if ($DeleteData) { Write-Output '  3. after confirmation: delete the PersistentVolumeClaims (ALL DATA)' }
    else { Write-Output '  3. PersistentVolumeClaims kept (-DeleteData to remove them)' }
    if ($DeleteData -and $DeleteSecrets) { Write-Output "  4. after confirmation: delete the namespace $Namespace" }
    else { Write-Output '  4. the namespace kept (it goes only with -DeleteData and -DeleteSecrets)' }
    exit 0
}

if (-not (Get-Command kubectl -ErrorAction SilentlyContinue)) { Stop-WithError 'kubectl is not installed' }
$r = Invoke-Kubectl config view '--minify' -o 'jsonpath={.contexts[0].name} (cluster {.clusters[0].name} at {.clusters[0].cluster.server})'
if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot read the kubectl configuration for $ContextName" }
$target = ($r.Out -join '').Trim()
if (-not $target) { Stop-WithError 'no kubectl context is set (pass -Context NAME)' }
$r = Invoke-Kubectl version '--request-timeout=10s'
if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot reach the cluster of context $target" }
$r = Invoke-Kubectl get namespace $Namespace -o name '--ignore-not-found'
if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot look up the namespace $Namespace on context ${target}: nothing deleted" }
if (-not ($r.Out -join '').Trim()) {
    Write-Output "namespace $Namespace does not exist on context ${target}: nothing to do"
    exit 0
}

Confirm-Step "Delete the Tradewind workloads, Services and ConfigMaps in namespace $Namespace on context ${target}?"
Write-Output "==> deleting Tradewind resources in $Namespace"
if ($PSCmdlet.ShouldProcess("$Kinds -l $Selector in $Namespace on context $target", 'kubectl delete')) {
    $r = Invoke-Kubectl -n $Namespace delete $Kinds -l $Selector '--ignore-not-found' '--wait=true'
    Show-Result $r
    if ($r.Code -ne 0) { Stop-WithError 'deleting the Tradewind resources failed: Secrets and data untouched' }
}

if ($DeleteSecrets) {
    Confirm-Step "Delete the Tradewind Secrets (database password, control token, exchange keys) in namespace $Namespace on context ${target}?"
    if ($PSCmdlet.ShouldProcess("Secrets $($Secrets -join ' ') in $Namespace on context $target", 'kubectl delete')) {
        $r = Invoke-Kubectl -n $Namespace delete secret @Secrets '--ignore-not-found'
        Show-Result $r
        if ($r.Code -ne 0) { Stop-WithError 'deleting the Secrets failed: data untouched' }
    }
}
else {
    Write-Output 'Secrets kept (-DeleteSecrets to remove them)'
}

$r = Invoke-Kubectl -n $Namespace get pvc -o name
if ($r.Code -ne 0) { Show-Result $r; Stop-WithError "cannot list the PersistentVolumeClaims in ${Namespace}: data and namespace untouched" }
$pvcs = @($r.Out | Where-Object { $_.Trim() })
if ($DeleteData) {
    if ($pvcs.Count -gt 0) {
        Write-Output "PersistentVolumeClaims in ${Namespace}:"
        $pvcs | ForEach-Object { Write-Output "  $_" }
        Confirm-Step "Delete these PersistentVolumeClaims and ALL their data (Redis, PostgreSQL, Prometheus) on context ${target}?"
        if ($PSCmdlet.ShouldProcess("every PersistentVolumeClaim in $Namespace on context $target", 'kubectl delete')) {
            $r = Invoke-Kubectl -n $Namespace delete pvc '--all' '--wait=true'
            Show-Result $r
            if ($r.Code -ne 0) { Stop-WithError 'deleting the PersistentVolumeClaims failed' }
        }
    }
    else {
        Write-Output "no PersistentVolumeClaims in $Namespace"
    }
    if ($DeleteSecrets) {
        Confirm-Step "Delete the namespace $Namespace and anything else left in it on context ${target}?"
        if ($PSCmdlet.ShouldProcess("namespace $Namespace on context $target", 'kubectl delete')) {
            $r = Invoke-Kubectl delete namespace $Namespace '--ignore-not-found'
            Show-Result $r
            if ($r.Code -ne 0) { Stop-WithError 'deleting the namespace failed' }
        }
    }
    else {
        Write-Output "namespace $Namespace kept: it holds the Secrets (-DeleteSecrets as well to remove it)"
    }
}
elseif ($pvcs.Count -gt 0) {
    Write-Output "data kept: $($pvcs.Count) PersistentVolumeClaims remain (-DeleteData to remove them)"
}
Write-Output '==> done'

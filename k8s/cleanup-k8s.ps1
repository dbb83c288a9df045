<#
.SYNOPSIS
    Remove Tradewind from a cluster (same options as cleanup-k8s.sh).
.DESCRIPTION
    Deletes the workloads, Services, ConfigMaps, autoscalers, budgets, policies
    and RBAC of the tradewind namespace. The PersistentVolumeClaims (Redis,
    PostgreSQL, Prometheus data) and the Secrets are kept unless you ask, and
    you are asked to confirm before they are deleted (-Yes skips the question).
.EXAMPLE
    ./cleanup-k8s.ps1 -DeleteData
#>
[CmdletBinding()]
param(
    [string]$Context = '',
    [switch]$DeleteData,
    [switch]$DeleteSecrets,
    [switch]$Yes,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$Namespace = 'tradewind'
$Selector = 'app.kubernetes.io/part-of=tradewind'
$Kinds = 'deployment,statefulset,service,configmap,horizontalpodautoscaler,poddisruptionbudget,networkpolicy,serviceaccount,role,rolebinding,job'
$Secrets = @('tradewind-postgres', 'tradewind-control', 'tradewind-exchange', 'tradewind-grafana')

# A simple function (no param block), so that kubectl flags such as -n pass through.
function Invoke-Kubectl {
    $kubectlArgs = @($args)
    if ($Context) { $kubectlArgs = @('--context', $Context) + $kubectlArgs }
    & kubectl @kubectlArgs
}

function Confirm-Step([string]$Question) {
    if ($Yes) { return $true }
    $answer = Read-Host "$Question [y/N]"
    return ($answer -eq 'y' -or $answer -eq 'Y' -or $answer -eq 'yes')
}

if ($DryRun) {
    Write-Output 'Tradewind cleanup plan (dry run: no cluster contacted)'
    Write-Output "  1. kubectl -n $Namespace delete $Kinds -l $Selector"
    if ($DeleteSecrets) { Write-Output "  2. after confirmation: delete the Secrets $($Secrets -join ', ')" }
    else { Write-Output '  2. Secrets kept (-DeleteSecrets to remove them)' }
    if ($DeleteData) { Write-Output '  3. after confirmation: delete the PersistentVolumeClaims (ALL DATA) and the namespace' }
    else { Write-Output '  3. PersistentVolumeClaims and the namespace kept (-DeleteData to remove them)' }
    exit 0
}

if (-not (Get-Command kubectl -ErrorAction SilentlyContinue)) {
    Write-Error 'kubectl is not installed'
}
Invoke-Kubectl version '--request-timeout=10s' *> $null; if ($LASTEXITCODE -ne 0) { Write-Error 'cannot reach the cluster' }
& kubectl get namespace $Namespace *> $null
if ($LASTEXITCODE -ne 0) {
    Write-Output "namespace $Namespace does not exist: nothing to do"
    exit 0
}

Write-Output "==> deleting Tradewind resources in $Namespace"
Invoke-Kubectl -n $Namespace delete $Kinds -l $Selector --ignore-not-found '--wait=true' | Out-Null

if ($DeleteSecrets) {
    if (Confirm-Step 'Delete the Tradewind Secrets (database password, control token, exchange keys)?') {
        Invoke-Kubectl -n $Namespace delete secret @Secrets --ignore-not-found | Out-Null
    }
    else { Write-Output 'Secrets kept' }
}

$pvcs = & kubectl -n $Namespace get pvc -o name 2>$null
if ($pvcs) {
    Write-Output "PersistentVolumeClaims in ${Namespace}:"
    $pvcs | ForEach-Object { Write-Output "  $_" }
    if ($DeleteData -and (Confirm-Step 'Delete these PersistentVolumeClaims and ALL their data (Redis, PostgreSQL, Prometheus), and the namespace?')) {
        Invoke-Kubectl -n $Namespace delete pvc --all '--wait=true' | Out-Null
        Invoke-Kubectl delete namespace $Namespace --ignore-not-found | Out-Null
    }
    else {
        Write-Output 'data kept: the PersistentVolumeClaims and the namespace remain (-DeleteData to remove them)'
    }
}
elseif ($DeleteData) {
    Invoke-Kubectl delete namespace $Namespace --ignore-not-found | Out-Null
}
Write-Output '==> done'

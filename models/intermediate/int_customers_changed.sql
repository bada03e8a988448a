{{ config(tags=['intermediate', 'identity']) }}
-- The customers an incremental build rebuilds whole: those with new activity since
-- the last successful build, and those whose identity graph gained an edge (a crm
-- row can merge two customers without any new event). Computed once per build and
-- read by every customer-grain incremental model.
with changed as (
    {{ activity_customers() }}
)

select distinct customer_id from changed

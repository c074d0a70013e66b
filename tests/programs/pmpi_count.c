/* A PMPI profiling library for tests (tests/programs/torch_engines.py loads it through
   mpi4py.profile): counts the collectives and the point-to-point calls this process makes,
   on any communicator, then calls MPI's own. Built by the test with the MPI's mpicc. */
#include <mpi.h>

static long collectives, messages;
long pmpi_count_collectives(void) { return collectives; }
long pmpi_count_messages(void) { return messages; }

#define COLL(call) (collectives++, call)
#define P2P(call) (messages++, call)

int MPI_Allreduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op o, MPI_Comm c)
{ return COLL(PMPI_Allreduce(s, r, n, t, o, c)); }
#if MPI_VERSION >= 4  /* the large-count calls (Open MPI 5 is MPI 3.1: none) */
int MPI_Allreduce_c(const void *s, void *r, MPI_Count n, MPI_Datatype t, MPI_Op o, MPI_Comm c)
{ return COLL(PMPI_Allreduce_c(s, r, n, t, o, c)); }
#endif
int MPI_Iallreduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op o, MPI_Comm c,
                   MPI_Request *q)
{ return COLL(PMPI_Iallreduce(s, r, n, t, o, c, q)); }
#if MPI_VERSION >= 4  /* the large-count calls (Open MPI 5 is MPI 3.1: none) */
int MPI_Iallreduce_c(const void *s, void *r, MPI_Count n, MPI_Datatype t, MPI_Op o, MPI_Comm c,
                     MPI_Request *q)
{ return COLL(PMPI_Iallreduce_c(s, r, n, t, o, c, q)); }
#endif
int MPI_Bcast(void *b, int n, MPI_Datatype t, int root, MPI_Comm c)
{ return COLL(PMPI_Bcast(b, n, t, root, c)); }
#if MPI_VERSION >= 4  /* the large-count calls (Open MPI 5 is MPI 3.1: none) */
int MPI_Bcast_c(void *b, MPI_Count n, MPI_Datatype t, int root, MPI_Comm c)
{ return COLL(PMPI_Bcast_c(b, n, t, root, c)); }
#endif
int MPI_Comm_dup(MPI_Comm c, MPI_Comm *d) { return COLL(PMPI_Comm_dup(c, d)); }
int MPI_Comm_split_type(MPI_Comm c, int s, int k, MPI_Info i, MPI_Comm *d)
{ return COLL(PMPI_Comm_split_type(c, s, k, i, d)); }
int MPI_Sendrecv(const void *s, int sn, MPI_Datatype st, int to, int stag, void *r, int rn,
                 MPI_Datatype rt, int from, int rtag, MPI_Comm c, MPI_Status *u)
{ return P2P(PMPI_Sendrecv(s, sn, st, to, stag, r, rn, rt, from, rtag, c, u)); }
#if MPI_VERSION >= 4  /* the large-count calls (Open MPI 5 is MPI 3.1: none) */
int MPI_Sendrecv_c(const void *s, MPI_Count sn, MPI_Datatype st, int to, int stag, void *r,
                   MPI_Count rn, MPI_Datatype rt, int from, int rtag, MPI_Comm c, MPI_Status *u)
{ return P2P(PMPI_Sendrecv_c(s, sn, st, to, stag, r, rn, rt, from, rtag, c, u)); }
#endif
int MPI_Isend(const void *b, int n, MPI_Datatype t, int to, int tag, MPI_Comm c, MPI_Request *q)
{ return P2P(PMPI_Isend(b, n, t, to, tag, c, q)); }
#if MPI_VERSION >= 4  /* the large-count calls (Open MPI 5 is MPI 3.1: none) */
int MPI_Isend_c(const void *b, MPI_Count n, MPI_Datatype t, int to, int tag, MPI_Comm c,
                MPI_Request *q)
{ return P2P(PMPI_Isend_c(b, n, t, to, tag, c, q)); }
#endif
int MPI_Irecv(void *b, int n, MPI_Datatype t, int from, int tag, MPI_Comm c, MPI_Request *q)
{ return P2P(PMPI_Irecv(b, n, t, from, tag, c, q)); }
#if MPI_VERSION >= 4  /* the large-count calls (Open MPI 5 is MPI 3.1: none) */
int MPI_Irecv_c(void *b, MPI_Count n, MPI_Datatype t, int from, int tag, MPI_Comm c,
                MPI_Request *q)
{ return P2P(PMPI_Irecv_c(b, n, t, from, tag, c, q)); }
#endif

// The baseline for API accept latency: a fastify route that validates nothing and stores nothing.
import Fastify from 'fastify'

const app = Fastify()
app.post('/api/v1/mail', async (_req, reply) => reply.code(202).send({ id: 'x', message_id: '<x@y>', state: 'outgoing' }))
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
process.stdout.write('ready\n')
